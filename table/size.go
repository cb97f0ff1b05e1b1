package table

import "unsafe"

const sizeofTmpl = unsafe.Sizeof(tmpl{})

const sizeofConn = unsafe.Sizeof(conn{})
