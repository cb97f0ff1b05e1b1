//go:build !linux

package afxdp

import (
	"fmt"
	"runtime"

	"github.com/xvs-lb/xvs/dataplane"
)

func init() {
	dataplane.Register("afxdp", func(dataplane.Options) (dataplane.Backend, error) {
		return nil, fmt.Errorf("%s: %w", runtime.GOOS, ErrNotSupported)
	})
}
