package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func startServer(t *testing.T, f Target) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "xvs.sock")
	s := NewServer(f, Options{})
	if err := s.Start(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func call(t *testing.T, path string, req Request) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := Call(ctx, path, req, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestSocketServesAndCleansUp(t *testing.T) {
	s, path := startServer(t, listFixture(t))
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != os.Geteuid() {
		t.Errorf("socket owner %d, want %d", st.Uid, os.Geteuid())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", di.Mode().Perm())
	}
	want, _ := os.ReadFile("../ipvsadm/testdata/list_numeric.golden")
	out, errs, code := call(t, path, Request{Argv: []string{"-Ln"}})
	if out != string(want) || errs != "" || code != 0 {
		t.Errorf("-Ln over the socket: %q %q %d", out, errs, code)
	}
	out, errs, code = call(t, path, Request{Argv: []string{"-A", "-t", "10.4.3.192:80"}})
	if out != "" || errs != "Service already exists\n" || code != 255 {
		t.Errorf("-A existing over the socket: %q %q %d", out, errs, code)
	}
	s.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	var b bytes.Buffer
	_, err = Call(context.Background(), path, Request{Argv: []string{"-Ln"}}, &b, &b)
	want2 := "cannot connect to xvs at " + path + ": is `xvs run` running?"
	if !errors.Is(err, ErrNotRunning) || err.Error() != want2 {
		t.Errorf("after Close: %v, want %q", err, want2)
	}
}

func TestSocketConcurrentClients(t *testing.T) {
	f := listFixture(t)
	_, path := startServer(t, f)
	want, _ := os.ReadFile("../ipvsadm/testdata/list_numeric.golden")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				var out, e bytes.Buffer
				argv := []string{"-Ln"}
				if j%2 == 1 { // interleave configuration commands
					argv = []string{"-A", "-u", fmt.Sprintf("10.7.%d.%d:5060", i, j)}
				}
				code, err := Call(context.Background(), path, Request{Argv: argv}, &out, &e)
				if err != nil || code != 0 || e.Len() != 0 {
					errs <- fmt.Errorf("%v: code %d err %v stderr %q", argv, code, err, e.String())
					return
				}
				if argv[0] == "-Ln" && !bytes.HasPrefix(out.Bytes(), want[:100]) {
					errs <- fmt.Errorf("-Ln output %q", out.String())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.Snapshot().Services()); n != 4+16 {
		t.Errorf("%d services, want 20", n)
	}
}

// TestSocketLargeOutput streams an answer bigger than one chunk.
func TestSocketLargeOutput(t *testing.T) {
	f := newFake(t, 1, "")
	_, path := startServer(t, f)
	var rules strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&rules, "-A -u 10.%d.%d.1:5060 -s rr -p 60 --pe sip -o\n-a -u 10.%d.%d.1:5060 -r 192.168.0.1 -m\n", i/250, i%250, i/250, i%250)
	}
	if _, errs, code := call(t, path, Request{Argv: []string{"-R"}, Stdin: rules.String()}); code != 0 {
		t.Fatalf("restore: %q", errs)
	}
	out, _, code := call(t, path, Request{Argv: []string{"-Sn"}})
	if code != 0 || len(out) <= chunkBytes || strings.Count(out, "\n") != 6000 {
		t.Fatalf("-Sn: code %d, %d bytes, %d lines", code, len(out), strings.Count(out, "\n"))
	}
}

func TestSocketProtocolErrors(t *testing.T) {
	_, path := startServer(t, listFixture(t))
	for _, tc := range []struct{ send, want string }{
		{`{"v":3,"argv":["-Ln"]}` + "\n", "control protocol version 3 not supported"},
		{"not json\n", "malformed request"},
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(tc.send))
		var r Response
		if err := jsonDecode(c, &r); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if !r.Done || r.Code != 255 || !strings.Contains(r.Stderr, tc.want) {
			t.Errorf("%q: %+v", tc.send, r)
		}
	}
}

func TestStaleSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "xvs.sock")

	// A socket left by a crashed daemon is replaced.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	s := NewServer(newFake(t, 1, ""), Options{})
	if err := s.Start(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	// A live one is not.
	s2 := NewServer(newFake(t, 1, ""), Options{})
	if err := s2.Start(path); !errors.Is(err, ErrInUse) {
		t.Errorf("second server: %v, want ErrInUse", err)
	}
	s.Close()

	// Something that is not a socket is left alone.
	os.WriteFile(path, []byte("precious"), 0o600)
	if err := s2.Start(path); !errors.Is(err, ErrNotSocket) {
		t.Errorf("regular file: %v, want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("file replaced")
	}

	// A world-writable directory is refused.
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if err := NewServer(newFake(t, 1, ""), Options{}).Start(filepath.Join(open, "xvs.sock")); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("world-writable dir: %v, want ErrUnsafeDir", err)
	}
}

func jsonDecode(c net.Conn, v any) error {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return json.NewDecoder(c).Decode(v)
}
