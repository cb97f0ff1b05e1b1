package table

import "unsafe"

const sizeofTmpl = unsafe.Sizeof(tmpl{})
