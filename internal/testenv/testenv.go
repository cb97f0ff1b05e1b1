// Package testenv is what xvs's tests need from the machine they run on,
// and the one rule for what is missing: a requirement that is not there
// (root, a tool, a kernel feature, the shared third-party captures) skips
// the test, except under CI (CI=true), which provides all of them, where
// it fails it. Missing root always skips: CI runs as root, and a
// developer's `go test ./...` must pass without it.
//
// It also holds the pieces many tests share: [Lab] (a network-namespace
// lab for one test), [Buffer] (output read while it is written), [Build]
// (the project's commands, built for the tests that run them) and
// the test corpus ([Captures]: the repository's own captures, and those
// only ../shared has, read in place; [RepoData], [SharedData]).
package testenv

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/xvs-lb/xvs/internal/lab"
)

// InCI reports whether the tests run in CI (CI=true): every requirement is
// installed there, so a missing one is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips tb when err is set (something the test needs is missing),
// or fails it in CI; lab.ErrNotRoot always skips.
func Require(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, lab.ErrNotRoot) || !InCI() {
		tb.Skip(err)
	}
	tb.Fatal(err)
}

// NeedRoot skips tb unless it runs as root; why says what root is for.
func NeedRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to " + why)
	}
}

// NeedLab skips tb, or fails it ([Require]), when network-namespace labs
// cannot be built here (not root, no ip(8)).
func NeedLab(tb testing.TB) {
	tb.Helper()
	Require(tb, lab.Available())
}

// Lab builds a lab for tb ([NeedLab] first) and closes it when tb ends,
// failing tb if closing fails.
func Lab(tb testing.TB, spec lab.Spec) *lab.Lab {
	tb.Helper()
	NeedLab(tb)
	l, err := lab.New(spec)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Error(err)
		}
	})
	return l
}

// Buffer collects output that one goroutine or process writes while
// another reads it (a daemon's stderr, a logger's lines): a bytes.Buffer
// safe for concurrent use. The zero Buffer is empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
