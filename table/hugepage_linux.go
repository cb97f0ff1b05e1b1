package table

import (
	"syscall"
	"unsafe"
)

// hugePage is the x86-64 and arm64 transparent huge page size.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back the 2 MiB-aligned interior of s with
// transparent huge pages (madvise MADV_HUGEPAGE), so that random accesses
// over a table of tens of megabytes cost one cache miss each instead of a
// cache miss plus a page walk: with 4 KiB pages a 1 000 000-template table
// spans 25 000 pages, far beyond the TLB. It is called at construction,
// before the memory is first touched, and is best effort: where the kernel
// disables THP (enabled=never) it changes nothing.
func adviseHuge[T any](s []T) {
	if len(s) == 0 {
		return
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	n := uintptr(len(s)) * unsafe.Sizeof(s[0])
	start := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + n) &^ (hugePage - 1)
	if end > start {
		syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_HUGEPAGE)
	}
}
