package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/packet"
)

// drainRules: persistence timeout 3 s, so that drained calls go idle fast
// and yet outlive a loaded machine's pause between sending a call and
// reading its template (with 1 s, a test on a machine at load 10 found
// the first calls' templates already expired).
const drainRules = `-A -u 10.0.0.1:5060 -s rr -p 3 -M 0.0.0.0 --pe sip -o
-a -u 10.0.0.1:5060 -r 192.168.0.1:5060 -m
-a -u 10.0.0.1:5060 -r 192.168.0.2:5060 -m
-a -u 10.0.0.1:5060 -r 192.168.0.3:5060 -m
`

func startRules(t *testing.T, rulesText string) (*Daemon, *memBackend) {
	t.Helper()
	rules := filepath.Join(t.TempDir(), "r.rules")
	os.WriteFile(rules, []byte(rulesText), 0o600)
	d, err := Start(Options{Iface: "lo", Rules: rules, Mode: "memtest", Queues: 1, Templates: 4096, Conns: 4096, LockDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, lastBackend
}

// servers maps each live template's Call-ID to its real server.
func servers(t *testing.T, d *Daemon) map[string]string {
	t.Helper()
	tm, err := d.Templates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, x := range tm {
		if dst := d.Snapshot().Dest(ipvs.DestID(x.Dest)); dst != nil {
			out[string(x.PEData)] = dst.Addr.String()
		}
	}
	return out
}

// Drain: no new Call-IDs reach the drained server, its live calls stay on
// it until they go idle, xvsadm shows how many remain, and then "drained".
func TestDrainKeepsLiveCallsUntilIdle(t *testing.T) {
	d, b := startRules(t, drainRules)
	q := b.queues[0]
	sent := uint64(0)
	send := func(ids ...string) {
		for _, id := range ids {
			q.Inject(invite("10.9.0.1:5060", id))
		}
		sent += uint64(len(ids))
		waitSent(t, q, sent)
	}
	var old []string
	for i := range 12 {
		old = append(old, fmt.Sprintf("old-%d", i))
	}
	send(old...)
	before := servers(t, d)
	var onDrained []string
	for _, id := range old {
		if before[id] == "192.168.0.1:5060" {
			onDrained = append(onDrained, id)
		}
	}
	if len(onDrained) != 4 {
		t.Fatalf("rr put %d of 12 calls on .1: %v", len(onDrained), before)
	}

	sock := filepath.Join(t.TempDir(), "xvs.sock")
	s := control.NewServer(d, control.Options{Version: "test"})
	if err := s.Start(sock); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	adm := func(argv ...string) string {
		t.Helper()
		var out, errb strings.Builder
		code, err := control.Call(context.Background(), sock, control.Request{V: 1, Argv: argv}, &out, &errb)
		if err != nil || code != 0 {
			t.Fatalf("%v: %d %v %s", argv, code, err, errb.String())
		}
		return out.String()
	}
	adm("--drain", "-u", "10.0.0.1:5060", "-r", "192.168.0.1:5060")

	// Keep the old calls alive while new calls arrive: the old ones on .1
	// stay there, no new one goes there.
	var fresh []string
	for round := range 3 {
		var ids []string
		for i := range 6 {
			ids = append(ids, fmt.Sprintf("new-%d-%d", round, i))
		}
		fresh = append(fresh, ids...)
		send(append(ids, onDrained...)...)
		time.Sleep(200 * time.Millisecond)
	}
	now := servers(t, d)
	for _, id := range fresh {
		if now[id] == "192.168.0.1:5060" || now[id] == "" {
			t.Fatalf("new call %s on %q during the drain", id, now[id])
		}
	}
	for _, id := range onDrained {
		if now[id] != "192.168.0.1:5060" {
			t.Fatalf("live call %s moved to %s during the drain", id, now[id])
		}
	}
	out := adm("-Ln", "--health")
	if !strings.Contains(out, "  -> 192.168.0.1:5060             draining 0      4") {
		t.Fatalf("-Ln --health during the drain:\n%s", out)
	}
	if !strings.Contains(adm("-Sn"), "--drain -u 10.0.0.1:5060 -r 192.168.0.1:5060 -w 1\n") {
		t.Fatal("-S lacks the drain")
	}
	// Idle: after the persistence timeout the templates expire and the
	// server shows drained.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out, "  -> 192.168.0.1:5060             drained  0      0") {
		if time.Now().After(deadline) {
			t.Fatalf("never drained:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
		out = adm("-Ln", "--health")
	}
	// A late datagram of an expired call is scheduled elsewhere.
	send(onDrained[0])
	if got := servers(t, d)[onDrained[0]]; got == "192.168.0.1:5060" || got == "" {
		t.Fatalf("expired call rescheduled to %q", got)
	}
	adm("--undrain", "-u", "10.0.0.1:5060", "-r", "192.168.0.1:5060")
	if w := d.Snapshot().Services()[0].Dests[2].Weight; w != 1 {
		t.Fatalf("weight after undrain %d", w)
	}
}

// The probe tap hands datagrams to the probes' source addresses to the
// prober and keeps them from the pipeline (no template, no transmission).
func TestProbeTap(t *testing.T) {
	d, b := startRules(t, drainRules)
	q := b.queues[0]
	var mu sync.Mutex
	var got []string
	d.tap.deliver = func(src, dst netip.AddrPort, payload []byte) bool {
		mu.Lock()
		got = append(got, src.String()+">"+dst.String()+" "+strings.SplitN(string(payload), "\r\n", 2)[0])
		mu.Unlock()
		return true
	}
	d.tap.setAddrs([]netip.Addr{netip.MustParseAddr("10.0.0.99")})
	resp := []byte("SIP/2.0 200 OK\r\nCall-ID: xvs-hc-1@10.0.0.99\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	probeReply := craft.Spec{Link: packet.LinkRaw, Src: netip.MustParseAddrPort("192.168.0.2:5060"),
		Dst: netip.MustParseAddrPort("10.0.0.99:40000"), Payload: resp}.Build()
	q.Inject(probeReply, invite("10.9.0.1:5060", "call-1"), probeReply)
	waitSent(t, q, 3)
	mu.Lock()
	n := len(got)
	first := ""
	if n > 0 {
		first = got[0]
	}
	mu.Unlock()
	if n != 2 || first != "192.168.0.2:5060>10.0.0.99:40000 SIP/2.0 200 OK" {
		t.Fatalf("delivered %d: %q", n, first)
	}
	if w := d.Workers()[0]; w.Frames != 1 {
		t.Fatalf("the pipeline saw %d frames, want only the INVITE", w.Frames)
	}
	if st := q.Stats(); st.TxFrames != 1 || st.Recycled != 2 {
		t.Fatalf("queue %+v", st)
	}
	if tm := servers(t, d); len(tm) != 1 {
		t.Fatalf("templates %v", tm)
	}
	// A batch of probe replies only is given back at once.
	q.Inject(probeReply)
	waitSent(t, q, 4)
	if st := q.Stats(); st.Recycled != 3 {
		t.Fatalf("queue %+v", st)
	}
}

// The tap wrapper keeps the backend queue's optional interfaces.
func TestTapQueueKeepsCopyTransmitter(t *testing.T) {
	q := dataplane.NewMemQueue(packet.LinkRaw)
	var w dataplane.Queue = &tapQueue{Queue: q, tap: &probeTap{}}
	ct, ok := w.(dataplane.CopyTransmitter)
	if !ok {
		t.Fatal("tapQueue hides CopyTransmitter")
	}
	if n, err := ct.TransmitCopies(0, [][]byte{{0x45}}); n != 1 || err != nil || len(q.Sent()) != 1 {
		t.Fatalf("TransmitCopies: %d %v", n, err)
	}
}
