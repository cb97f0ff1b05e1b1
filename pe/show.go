package pe

// AppendEscaped appends data to dst with every byte outside printable ASCII
// (0x21..0x7e) and the backslash written as \xHH, so that a hostile key can
// neither inject terminal control sequences into a listing nor break a
// whitespace-separated format. It is the Show of the built-in engines.
func AppendEscaped(dst, data []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range data {
		if c > 0x20 && c < 0x7f && c != '\\' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '\\', 'x', hex[c>>4], hex[c&0xf])
	}
	return dst
}
