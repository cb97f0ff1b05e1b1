//go:build !amd64

package table

// prefetch is a no-op where there is no assembly version.
func prefetch(addr uintptr) {}

// prefetch2 is a no-op where there is no assembly version.
func prefetch2(a, b uintptr) {}
