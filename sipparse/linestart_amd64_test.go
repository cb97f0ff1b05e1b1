package sipparse

type lineStartImpl struct {
	name string
	fn   func([]byte, int) int
	use  func() (restore func())
}

// lineStartImpls lists the searches this machine runs: the generic one, the
// SSE2 one (every amd64 CPU) and the AVX2 one when the CPU has it, each with
// a way to make nextLineStart use it.
func lineStartImpls() []lineStartImpl {
	sse2 := func(b []byte, from int) int {
		if len(b) <= sse2Block {
			return nextLineStartGeneric(b, from)
		}
		return lineStartSSE2(b, from)
	}
	impls := []lineStartImpl{
		{"generic", nextLineStartGeneric, func() func() { useVector = false; return func() { useVector = true } }},
		{"sse2", sse2, func() func() { old := useAVX2; useAVX2 = false; return func() { useAVX2 = old } }},
	}
	if useAVX2 {
		avx2 := func(b []byte, from int) int {
			if len(b) <= avx2Block {
				return sse2(b, from)
			}
			return lineStartAVX2(b, from)
		}
		impls = append(impls, lineStartImpl{"avx2", avx2, func() func() { return func() {} }})
	}
	return impls
}
