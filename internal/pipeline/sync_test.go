package pipeline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/craft"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/internal/sysctl"
	"github.com/xvs-lb/xvs/packet"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// drain returns the records queued in r, copied.
func drain(r *syncring.Ring) []syncring.Record {
	var out []syncring.Record
	r.Drain(0, func(rec *syncring.Record) { out = append(out, *rec) })
	return out
}

// masterLab is a lab whose workers run with a master's rings.
func masterLab(t *testing.T, nworkers int, rules string) (*lab, []*syncring.Ring) {
	l := newLab(t, nworkers, rules)
	var rings []*syncring.Ring
	for _, w := range l.workers {
		r := syncring.New(64)
		w.SetSyncMaster(r)
		rings = append(rings, r)
	}
	return l, rings
}

// A master syncs a SIP template when the call starts, not again while the
// call goes on within the refresh period, again after it: the kernel's rules
// with xvs's sync_refresh_period 10. One-packet scheduling creates no
// connection, so nothing else is synced.
func TestSyncMasterTemplate(t *testing.T) {
	l, rings := masterLab(t, 1, `
-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -g
`)
	d, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("call-1@proxy")))
	if d.Reason != ReasonScheduled {
		t.Fatal(d.Reason)
	}
	recs := drain(rings[0])
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	c, v, dst := r.Addrs()
	want := syncproto.FlagTemplate | syncproto.FlagDRoute | syncproto.FlagNoOutput | syncproto.FlagInactive
	if r.Flags != want || r.Protocol != 17 || c != netip.MustParseAddr("0.0.0.0") || v != netip.MustParseAddr("10.4.3.192") ||
		dst != netip.MustParseAddr("192.168.1.10") || r.CPort != 0 || r.VPort != 5060 || r.DPort != 5060 || r.Timeout != 60 ||
		string(r.PEData[:r.PEDataLen]) != "call-1@proxy" || r.Queued != l.now || r.Used != l.now {
		t.Fatalf("record %+v", r)
	}
	if _, id, ok := pe.Lookup("sip"); !ok || r.PE != id {
		t.Fatalf("pe %d", r.PE)
	}
	// 1 s in: nothing; 5 s: the one retry (sync_retries 1, at least
	// refresh/8 later); 10 s: nothing, the expiry has moved by less than
	// the refresh period since the first sync and the retry is spent.
	for i, at := range []time.Duration{time.Second, 4 * time.Second, 5 * time.Second} {
		l.advance(at)
		l.send(0, sip("10.4.3.7:5062", vip, craft.SIPBye("call-1@proxy")))
		if n := len(drain(rings[0])); n != map[int]int{1: 1}[i] {
			t.Fatalf("%d records at +%v", n, at)
		}
	}
	// The retry moved the mark as a sync does: the next refresh is 10 s
	// after it.
	l.advance(6 * time.Second) // 16 s
	l.send(0, sip("10.4.3.7:5062", vip, craft.SIPBye("call-1@proxy")))
	if recs := drain(rings[0]); len(recs) != 1 || recs[0].Used != l.now {
		t.Fatalf("refresh: %+v", recs)
	}
	if c := l.workers[0].Counters(); c.Sync.Queued != 3 {
		t.Errorf("queued %d", c.Sync.Queued)
	}

	// The kernel's defaults: every use of a template is synced.
	setSysctl(t, l, "sync_refresh_period=0")
	setSysctl(t, l, "sync_retries=0")
	for range 3 {
		l.advance(time.Millisecond)
		l.send(0, sip("10.4.3.7:5062", vip, craft.SIPBye("call-1@proxy")))
	}
	if n := len(drain(rings[0])); n != 3 {
		t.Errorf("kernel defaults: %d records for 3 datagrams", n)
	}

	// No master: nothing is queued.
	l.workers[0].SetSyncMaster(nil)
	l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("call-2@proxy")))
	if n := rings[0].Len(); n != 0 {
		t.Errorf("%d records without a master", n)
	}
}

// Connections: a UDP connection is synced at its third packet and every 50
// after (sync_threshold 3 50); a TCP one when it becomes ESTABLISHED; NAT
// connections carry their real server's port; a persistent service's
// template goes with them.
func TestSyncMasterConnections(t *testing.T) {
	l, rings := masterLab(t, 1, `
-A -u 10.0.0.1:53 -s rr
-a -u 10.0.0.1:53 -r 192.168.0.2:5353 -m
-A -t 10.0.0.1:80 -s rr -p 300
-a -t 10.0.0.1:80 -r 192.168.0.3:8080 -m
`)
	for i := 1; i <= 54; i++ {
		l.advance(300 * time.Millisecond) // the 53rd is 15 s after the 3rd: past the refresh period
		l.send(0, craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Src: netip.MustParseAddrPort("198.51.100.7:4000"),
			Dst: netip.MustParseAddrPort("10.0.0.1:53"), Payload: []byte("q")}.Build())
		n := len(drain(rings[0]))
		if want := i == 3 || i == 53; (n == 1) != want || n > 1 {
			t.Fatalf("UDP packet %d: %d records", i, n)
		}
	}
	tcp := func(flags uint8) []syncring.Record {
		l.advance(time.Millisecond)
		d, _ := l.send(0, craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Proto: 6, TCPFlags: flags,
			Src: netip.MustParseAddrPort("198.51.100.8:40000"), Dst: netip.MustParseAddrPort("10.0.0.1:80")}.Build())
		if d.Verdict() != Forward {
			t.Fatalf("tcp %x: %v", flags, d.Reason)
		}
		return drain(rings[0])
	}
	recs := tcp(tcpSYN) // SYN_RECV: not synced; the new template is
	if len(recs) != 1 || recs[0].Flags&syncproto.FlagTemplate == 0 || recs[0].Timeout != 300 || recs[0].DPort != 8080 {
		t.Fatalf("SYN: %+v", recs)
	}
	if recs := tcp(tcpACK); len(recs) != 0 { // ESTABLISHED, its second packet
		t.Fatalf("ESTABLISHED at the second packet: %+v", recs)
	}
	recs = tcp(tcpACK) // the third (sync_threshold 3)
	if len(recs) != 1 || recs[0].Flags != syncproto.FlagMasq || recs[0].State != syncproto.TCPEstablished ||
		recs[0].CPort != 40000 || recs[0].VPort != 80 || recs[0].DPort != 8080 || recs[0].Timeout != 900 {
		t.Fatalf("ESTABLISHED: %+v", recs)
	}
	if recs := tcp(tcpACK); len(recs) != 0 {
		t.Fatalf("established again: %+v", recs)
	}
	recs = tcp(tcpFIN | tcpACK) // FIN_WAIT: a state change worth syncing at once
	if len(recs) != 1 || recs[0].State != syncproto.TCPFinWait || recs[0].Flags&syncproto.FlagInactive == 0 {
		t.Fatalf("FIN: %+v", recs)
	}
}

// The walk: a live call that sends nothing is re-sent once per refresh
// period, with the time of its last use, so that a backup that started
// after the call learns it; so is one that came from another director, with
// the time of its last use there.
func TestSyncMasterWalk(t *testing.T) {
	l, rings := masterLab(t, 1, `
-A -u 10.4.3.192:5060 -s rr -p 120 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -g
`)
	w := l.workers[0]
	l.send(0, sip("10.4.3.7:5062", vip, craft.SIPInvite("idle@proxy")))
	used := l.now
	drain(rings[0])
	// A synced template (from another director) in the same table.
	dest := l.ptr.Load().Services()[0].Dests[0]
	in := syncring.New(8)
	w.SetSyncBackup(in)
	rec := in.Reserve()
	theirs := l.now - int64(time.Second)
	*rec = syncring.Record{Flags: syncproto.FlagTemplate | syncproto.FlagDRoute, Protocol: 17, VPort: 5060, DPort: 5060,
		Timeout: 120, Dest: uint32(dest.ID), PE: sipID(t), Used: theirs}
	rec.SetAddrs(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.4.3.192"), netip.MustParseAddr("192.168.1.10"))
	rec.SetPEData([]byte("theirs@proxy"))
	in.Commit()
	idle := func(d time.Duration) []syncring.Record {
		var out []syncring.Record
		for end := l.now + int64(d); l.now < end; {
			l.advance(50 * time.Millisecond) // idle batches, as the runner's poll timeout makes them
			w.BeginBatch(l.now)
			w.EndBatch()
			out = append(out, drain(rings[0])...)
		}
		return out
	}
	// Re-sent 7.5..10 s after its last sync (the whole table is visited
	// every 2.5 s): ours since its creation, theirs since it arrived.
	if recs := idle(7 * time.Second); len(recs) != 0 {
		t.Fatalf("walk within 3/4 of the refresh period: %+v", recs)
	}
	recs := idle(3 * time.Second)
	byID := map[string]syncring.Record{}
	for _, r := range recs {
		byID[string(r.PEData[:r.PEDataLen])] = r
	}
	if r, ok := byID["idle@proxy"]; len(recs) != 2 || !ok || r.Used != used || r.Queued == used {
		t.Fatalf("walk: %+v", recs)
	}
	if r, ok := byID["theirs@proxy"]; !ok || r.Used != theirs {
		t.Fatalf("walk of a received template: %+v", recs)
	}
	first := byID["idle@proxy"].Queued
	recs = idle(10 * time.Second)
	if len(recs) != 2 || recs[0].Queued-first < int64(7500*time.Millisecond) || recs[0].Queued-first > int64(10*time.Second) {
		t.Fatalf("second period: %+v", recs)
	}
	if c := w.Counters(); c.Sync.Walked != 4 || c.Sync.Applied[table.SyncInserted] != 1 {
		t.Errorf("counters %+v", c.Sync)
	}
}

func setSysctl(t testing.TB, l *lab, setting string) {
	t.Helper()
	id, v, err := sysctl.Parse(setting)
	if err == nil {
		err = l.cfg.SetSysctl(id, v)
	}
	if err != nil {
		t.Fatal(err)
	}
	l.publish()
}

func sipID(t *testing.T) pe.ID {
	_, id, ok := pe.Lookup("sip")
	if !ok {
		t.Fatal("no sip engine")
	}
	return id
}

// backupRecord is a received SIP template as the receiver hands it over.
func backupRecord(t *testing.T, dest *ipvs.Dest, callID string, timeout uint32) syncring.Record {
	r := syncring.Record{Flags: syncproto.FlagTemplate | syncproto.FlagDRoute, Protocol: 17, VPort: 5060,
		DPort: dest.Addr.Port(), Timeout: timeout, Dest: uint32(dest.ID), PE: sipID(t)}
	r.SetAddrs(netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.4.3.192"), dest.Addr.Addr())
	r.SetPEData([]byte(callID))
	return r
}

// A backup enters received templates so that the call's next datagram, on
// whichever worker, goes to the master's real server — not the one its own
// scheduler would pick — and the template shows as synced, counts in its
// server's PersistConn, and measures the lag.
func TestSyncBackupTemplates(t *testing.T) {
	l := newLab(t, 2, sipRules)
	dests := l.ptr.Load().Services()[0].Dests
	var rings []*syncring.Ring
	for _, w := range l.workers {
		r := syncring.New(16)
		w.SetSyncBackup(r)
		rings = append(rings, r)
	}
	// rr would send a first call to the first server of its list; the
	// master chose the last.
	target := dests[len(dests)-1]
	rec := backupRecord(t, target, "synced@proxy", 60)
	rec.Queued = l.now - int64(30*time.Millisecond)
	rings[0].Push(&rec)
	l.workers[0].BeginBatch(l.now)
	l.workers[0].EndBatch()
	for w := range 2 { // worker 1 finds it through the shared index
		d, _ := l.send(w, sip("10.4.3.7:5062", vip, craft.SIPBye("synced@proxy")))
		if d.Dest != target {
			t.Fatalf("worker %d: %v to %v, want %v", w, d.Reason, d.Dest.Addr, target.Addr)
		}
	}
	info := l.workers[0].Templates().AppendInfo(nil, l.now)
	if len(info) != 1 || !info[0].Synced || info[0].Timeout != time.Minute {
		t.Fatalf("templates %+v", info)
	}
	if p := target.Stats.Read().PersistConns; p != 2 { // worker 0's synced one, worker 1's own
		t.Errorf("PersistConn %d", p)
	}
	c := l.workers[0].Counters()
	if c.Sync.Applied[table.SyncInserted] != 1 || c.Sync.Lag.Count() != 1 || c.Sync.Lag.Max != 30*time.Millisecond {
		t.Errorf("counters %+v", c.Sync)
	}
	// The master moved the call: the backup follows.
	moved := backupRecord(t, dests[0], "synced@proxy", 60)
	rings[0].Push(&moved)
	l.advance(time.Second)
	if d, _ := l.send(0, sip("10.4.3.7:5062", vip, craft.SIPBye("synced@proxy"))); d.Dest != dests[0] {
		t.Errorf("after the move: %v", d.Dest.Addr)
	}
	if target.Stats.Read().PersistConns != 1 || dests[0].Stats.Read().PersistConns != 1 {
		t.Errorf("PersistConn %d %d", target.Stats.Read().PersistConns, dests[0].Stats.Read().PersistConns)
	}
	// An entry the master last used 50 s ago expires with the master's copy.
	old := backupRecord(t, target, "old@proxy", 60)
	old.Used = l.now - int64(50*time.Second)
	gone := backupRecord(t, target, "gone@proxy", 60)
	gone.Used = l.now - int64(61*time.Second)
	rings[0].Push(&old)
	rings[0].Push(&gone)
	l.workers[0].BeginBatch(l.now)
	l.workers[0].EndBatch()
	for _, in := range l.workers[0].Templates().AppendInfo(nil, l.now) {
		if string(in.PEData) == "old@proxy" && in.Remaining != 10*time.Second {
			t.Errorf("old: %v left", in.Remaining)
		}
		if string(in.PEData) == "gone@proxy" {
			t.Error("an expired entry was entered")
		}
	}
	if c := l.workers[0].Counters(); c.Sync.Expired != 1 {
		t.Errorf("expired %d", c.Sync.Expired)
	}
	// A destination deleted since the receiver resolved it.
	stale := backupRecord(t, target, "stale@proxy", 60)
	l.apply("-d -u 10.4.3.192:5060 -r " + target.Addr.String() + "\n")
	rings[1].Push(&stale)
	l.workers[1].BeginBatch(l.now)
	l.workers[1].EndBatch()
	if c := l.workers[1].Counters(); c.Sync.StaleDest != 1 {
		t.Errorf("stale %d", c.Sync.StaleDest)
	}
}

// A backup's connections: a TCP connection synced ESTABLISHED takes the
// next segment (an ACK, no SYN) to its real server after a failover.
func TestSyncBackupConnection(t *testing.T) {
	l := newLab(t, 1, `
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.0.2:80 -m
-a -t 10.0.0.1:80 -r 192.168.0.3:80 -m
`)
	dests := l.ptr.Load().Services()[0].Dests
	in := syncring.New(8)
	l.workers[0].SetSyncBackup(in)
	target := dests[len(dests)-1]
	r := syncring.Record{Flags: syncproto.FlagMasq, Protocol: 6, State: syncproto.TCPEstablished, CPort: 40000, VPort: 80,
		DPort: 80, Timeout: 900, Dest: uint32(target.ID)}
	r.SetAddrs(netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.0.0.1"), target.Addr.Addr())
	in.Push(&r)
	d, _ := l.send(0, craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Proto: 6, TCPFlags: tcpACK,
		Src: netip.MustParseAddrPort("198.51.100.7:40000"), Dst: netip.MustParseAddrPort("10.0.0.1:80")}.Build())
	if d.Reason != ReasonConnHit || d.Dest != target {
		t.Fatalf("%v to %v", d.Reason, d.Dest)
	}
	conns := l.workers[0].Conns().AppendInfo(nil, l.now)
	if len(conns) != 1 || !conns[0].Synced || conns[0].State != tcpEstablished {
		t.Fatalf("%+v", conns)
	}
	if st := target.Stats.Read(); st.ActiveConns != 1 {
		t.Errorf("ActiveConn %d", st.ActiveConns)
	}
}

// TestSyncBackupConnectionShared: a NAT connection a backup's worker
// received is in the shared connection index too, so that the real
// server's reply is translated on another worker (another RX queue, or the
// other leg's), as for a connection made here.
func TestSyncBackupConnectionShared(t *testing.T) {
	l := newLab(t, 2, "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.0.2:80 -m\n")
	sc, err := table.NewSharedConns(1 << 10)
	must(t, err)
	for _, w := range l.workers {
		w.sconns = sc
		w.crefr = make([]uint64, refreshFilterSize)
	}
	target := l.ptr.Load().Services()[0].Dests[0]
	in := syncring.New(8)
	l.workers[0].SetSyncBackup(in)
	r := syncring.Record{Flags: syncproto.FlagMasq, Protocol: 6, State: syncproto.TCPEstablished, CPort: 40000, VPort: 80,
		DPort: 80, Timeout: 900, Dest: uint32(target.ID)}
	r.SetAddrs(netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.0.0.1"), target.Addr.Addr())
	in.Push(&r)
	l.send(0, nil) // worker 0 applies what it received at its next batch
	d, out := l.send(1, craft.Spec{SrcMAC: clientMAC, DstMAC: lbMAC, Proto: 6, TCPFlags: tcpACK,
		Src: netip.MustParseAddrPort("192.168.0.2:80"), Dst: netip.MustParseAddrPort("198.51.100.7:40000")}.Build())
	var p packet.Parsed
	p.Decode(out, packet.LinkEthernet)
	if d.Reason != ReasonNATReply || d.Dest != target || p.Src != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("reply on the other worker: %v to %v from %v", d.Reason, d.Dest, p.Src)
	}
}

// Syncing costs the data path no allocation, on the master (a full ring
// included) and on the backup.
func TestSyncNoAllocations(t *testing.T) {
	l, rings := masterLab(t, 1, `
-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -g
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -g
`)
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = sip("10.4.3.7:5062", vip, craft.SIPInvite(fmt.Sprintf("alloc-%d@proxy", i)))
	}
	out := make([]Decision, len(frames))
	w := l.workers[0]
	in := syncring.New(64)
	w.SetSyncBackup(in)
	dest := l.ptr.Load().Services()[0].Dests[0]
	n := 0
	if a := testing.AllocsPerRun(50, func() {
		l.advance(11 * time.Second) // every template due again
		for range 8 {
			rec := backupRecord(t, dest, "b", 60)
			rec.PEData[0] = byte(n)
			n++
			in.Push(&rec)
		}
		w.ProcessBatch(frames, packet.LinkEthernet, l.now, out)
	}); a != 0 {
		t.Errorf("%v allocs per batch", a)
	}
	if rings[0].Stats().Dropped == 0 {
		t.Error("the full ring was not exercised")
	}
}

// FuzzSyncApply: whatever a receiver hands a backup's worker — any flags,
// protocol, state, ports, addresses, destination id, timeout, times and pe
// data — the worker neither crashes nor corrupts its tables: a datagram of
// every received call still gets a valid decision, and the gauges never go
// negative.
func FuzzSyncApply(f *testing.F) {
	f.Add([]byte("\x00\x00\x10\x03\x11\x00\x13\xc4\x13\xc4\x00\x00\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0a\x04\x03\xc0\xc0\xa8\x01\x0a\x00\x00\x0ecall-1@proxy"))
	f.Add([]byte("\x00\x00\x00\x00\x06\x01\x9c\x40\x00\x50\x00\x50\x00\x00\x03\x84\x00\x00\x00\x00\x00\x00\xc6\x33\x64\x07\x0a\x04\x03\xc4\xc0\xa8\x01\x0b\x00\x01\x00"))
	f.Add(bytes.Repeat([]byte{0xff}, 80))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newSyncFuzzLab(t)
		snap := l.ptr.Load()
		var dests []*ipvs.Dest
		for _, svc := range snap.Services() {
			dests = append(dests, svc.Dests...)
		}
		in := syncring.New(16)
		l.workers[0].SetSyncBackup(in)
		var ids []string
		for len(data) >= 36 && in.Len() < in.Cap() {
			var r syncring.Record
			r.Flags = syncproto.Flags(binary.BigEndian.Uint32(data[0:]))
			r.Protocol, r.IPv6 = data[4], data[5]&1 != 0
			r.CPort, r.VPort, r.DPort = binary.BigEndian.Uint16(data[6:]), binary.BigEndian.Uint16(data[8:]), binary.BigEndian.Uint16(data[10:])
			r.Timeout = binary.BigEndian.Uint32(data[12:])
			r.State = binary.BigEndian.Uint16(data[16:])
			// A destination of the configuration most of the time, else any id.
			if i := int(data[18]); i < len(dests) {
				r.Dest = uint32(dests[i].ID)
			} else {
				r.Dest = binary.BigEndian.Uint32(data[18:])
			}
			if data[22]&1 != 0 {
				r.Used = l.now - int64(binary.BigEndian.Uint16(data[22:]))*int64(time.Millisecond)*100
			}
			var c, v, d netip.Addr
			if r.IPv6 {
				c, v, d = netip.MustParseAddr("2001:db8:99::7"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::10")
			} else {
				c = netip.AddrFrom4([4]byte(data[24:28]))
				v = netip.AddrFrom4([4]byte(data[28:32]))
				d = netip.AddrFrom4([4]byte(data[32:36]))
			}
			r.SetAddrs(c, v, d)
			data = data[36:]
			if len(data) > 0 {
				n := min(int(data[0]), len(data)-1)
				r.SetPEData(data[1 : 1+n])
				if n > 0 {
					r.PE = sipID(t)
					ids = append(ids, string(data[1:1+n]))
				}
				data = data[1+n:]
			}
			in.Push(&r)
		}
		l.workers[0].BeginBatch(l.now)
		l.workers[0].EndBatch()
		for w := range 2 {
			for _, id := range append(ids, "other@x") {
				if strings.ContainsAny(id, "\r\n") {
					continue
				}
				d, _ := l.send(w, sip("10.4.3.7:5060", "10.4.3.192:5060", craft.SIPBye(id)))
				if d.Verdict() == Drop && d.Reason != ReasonNoDest && d.Reason != ReasonPEStrict && d.Reason != ReasonMalformed {
					t.Fatalf("call %q on worker %d: %v", id, w, d.Reason)
				}
			}
		}
		for _, svc := range l.ptr.Load().Services() {
			for _, d := range svc.Dests {
				if st := d.Stats.Read(); st.PersistConns < 0 || st.ActiveConns < 0 || st.InactConns < 0 {
					t.Fatalf("%v: gauges %+v", d.Addr, st)
				}
			}
		}
		l.advance(time.Hour) // everything expires; the sweep must cope
		for range 200 {
			l.workers[0].BeginBatch(l.now)
			l.workers[0].EndBatch()
		}
	})
}

// syncFuzzRules are FuzzDecision's services without the mh one, whose
// 65 537-entry table would be built for every input.
var syncFuzzRules = func() string {
	var b strings.Builder
	for line := range strings.Lines(fuzzRules) {
		if !strings.Contains(line, "10.4.3.193:") {
			b.WriteString(line)
		}
	}
	return b.String()
}()

// newSyncFuzzLab is a lab of two small workers (a few hundred entries, a
// small shared index) on syncFuzzRules: each fuzz input gets its own
// configuration and tables (the gauges start at 0) at a fraction of
// newLab's cost, so that the fuzzer runs many more inputs.
func newSyncFuzzLab(t testing.TB) *lab {
	t.Helper()
	cfg, err := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, cfg: cfg, now: int64(1000 * time.Second)}
	l.apply(syncFuzzRules)
	shared, err := table.NewShared(1 << 10)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		w, err := NewWorker(Options{ID: i, Config: &l.ptr, Templates: 256, Conns: 256, Seed: 42, Shared: shared,
			FragDatagrams: 64, FragHoldSlots: 16})
		if err != nil {
			t.Fatal(err)
		}
		l.workers = append(l.workers, w)
	}
	return l
}
