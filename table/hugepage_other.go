//go:build !linux

package table

// adviseHuge is a no-op where transparent huge pages cannot be requested.
func adviseHuge[T any](s []T) {}
