//go:build !amd64

package table

// prefetch is a no-op where there is no assembly version.
func prefetch(addr uintptr) {}
