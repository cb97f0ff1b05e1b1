//go:build !amd64

package sipparse

type lineStartImpl struct {
	name string
	fn   func([]byte, int) int
	use  func() (restore func())
}

// lineStartImpls lists the searches this machine runs: the generic one.
func lineStartImpls() []lineStartImpl {
	return []lineStartImpl{{"generic", nextLineStartGeneric, func() func() { return func() {} }}}
}
