package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/control"
)

// listingTemplates is the table of the measurement: 131 072 live
// templates (two RX queues × --templates 65536).
const listingTemplates = 131072

// heapPeak runs fn while sampling the live heap (as marked by the last
// collection) every millisecond, with the garbage collector made eager
// (GOGC=5) so that collections are frequent, and returns the peak growth
// over the live heap before fn.
func heapPeak(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	fn()
	close(stop)
	<-done
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}

// -Lcn over 131 072 templates streams: rows are written as the workers
// hand them over, so a listing's memory is a batch, not the table (issue 10
// item 12: one listing raised RSS 65 → 187 MB, six at once to 537 MB).
func TestListingMemoryIsBounded(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fills 131 072 templates (seconds) and measures the heap (not under -race)")
	}
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "r.rules")
	os.WriteFile(rulesFile, []byte(testRules), 0o600)
	d, err := Start(Options{Iface: "lo", Rules: rulesFile, Mode: "memtest", Queues: 1, Templates: 2 * listingTemplates,
		Conns: 1024, LockDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q := lastBackend.queues[0]
	start := time.Now()
	frames := make([][]byte, listingTemplates)
	var wg sync.WaitGroup
	for part := range 2 {
		wg.Go(func() {
			for i := part; i < listingTemplates; i += 2 {
				frames[i] = invite(fmt.Sprintf("10.%d.%d.%d:5060", 9+i>>16, i>>8&0xff, i&0xff), fmt.Sprintf("call-%06d@pc33.example.com", i))
			}
		})
	}
	wg.Wait()
	for i := 0; i < len(frames); i += 4096 {
		q.Inject(frames[i:min(i+4096, len(frames))]...)
	}
	frames = nil
	waitSent(t, q, listingTemplates)
	t.Logf("%d templates in %v", listingTemplates, time.Since(start).Round(time.Millisecond))
	sock := filepath.Join(dir, "run", "xvs.sock")
	s := control.NewServer(d, control.Options{Version: "test"})
	if err := s.Start(sock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	list := func() int64 {
		var out countWriter
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code, err := control.Call(ctx, sock, control.Request{Argv: []string{"-Lcn", "--persistent-conn"}}, &out, io.Discard)
		if err != nil || code != 0 {
			t.Errorf("-Lcn: %d %v", code, err)
		}
		return out.n.Load()
	}
	var size int64
	t.Logf("before: %s", rss())
	start = time.Now()
	one := heapPeak(func() { size = list() })
	t.Logf("one listing in %v", time.Since(start).Round(time.Millisecond))
	t.Logf("one -Lcn of %d bytes: heap peak +%.1f MiB (%s)", size, float64(one)/(1<<20), rss())
	if size < int64(listingTemplates)*100 {
		t.Fatalf("-Lcn wrote %d bytes for %d templates", size, listingTemplates)
	}
	six := heapPeak(func() {
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() { list() })
		}
		wg.Wait()
	})
	t.Logf("six at once: heap peak +%.1f MiB (%s)", float64(six)/(1<<20), rss())
	// The listing is 16.5 MB of text, from 131 072 templates: before it
	// streamed, one listing held them all several times over (+60 MiB of
	// live heap, six at once +286 MiB); a streaming one holds a batch and a
	// chunk per request (ListBatch, control's renderRows and chunkBytes).
	const bound = 12 << 20
	if one > bound || six > 4*bound {
		t.Fatalf("heap grew by %.1f MiB for one -Lcn, %.1f MiB for six; want under %d and %d MiB",
			float64(one)/(1<<20), float64(six)/(1<<20), bound>>20, 4*bound>>20)
	}
}
