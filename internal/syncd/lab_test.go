package syncd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/lab"
	"github.com/xvs-lb/xvs/internal/syncpolicy"
	"github.com/xvs-lb/xvs/internal/syncproto"
	"github.com/xvs-lb/xvs/internal/syncring"
	"github.com/xvs-lb/xvs/internal/testenv"
)

// director is one side of the lab test: a master and a backup at once
// (--start-daemon master and --start-daemon backup on the same interface).
type director struct {
	name   string
	host   lab.Host
	ring   *syncring.Ring
	sender *Sender
	backup *Receiver
	mu     sync.Mutex
	got    map[string]syncproto.Conn // by pe data
	from   map[netip.Addr]bool
}

func (d *director) deliver(e *Entry) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := e.Conn
	c.PEName, c.PEData = []byte(string(e.PEName)), []byte(string(e.PEData))
	d.got[string(e.PEData)] = c
	d.from[e.From.Addr().WithZone("")] = true
	return e.PE == 1
}

func (d *director) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.got)
}

// TestRootMulticast runs two directors in two network namespaces of a lab,
// each with a master and a backup on its eth0, over IPv4 (224.0.0.81) and
// IPv6 (ff02::81): each backup receives every template the other's master
// sends, field for field, none of its own master's (multicast loop is off),
// and a third backup with another syncid drops them all.
func TestRootMulticast(t *testing.T) {
	l := testenv.Lab(t, lab.Spec{Prefix: "xvssync", RealServers: 2})
	for _, tc := range []struct {
		group string
		ports int
	}{{"224.0.0.81", 1}, {"ff02::81", 1}, {"224.0.0.81", 4}} {
		t.Run(fmt.Sprintf("%s/sync_ports=%d", tc.group, tc.ports), func(t *testing.T) {
			runMulticast(t, l, netip.MustParseAddr(tc.group), tc.ports)
		})
	}
}

func runMulticast(t *testing.T, l *lab.Lab, group netip.Addr, ports int) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	sw := syncpolicy.Defaults()
	sw.Ports = ports
	dirs := []*director{{name: "A", host: l.Reals[0]}, {name: "B", host: l.Reals[1]}}
	for i, d := range dirs {
		d.ring = syncring.New(0)
		d.got, d.from = map[string]syncproto.Conn{}, map[netip.Addr]bool{}
		cfg := Config{Interface: lab.HostIface, SyncID: uint8(10 + i), Group: group}
		err := lab.Do(d.host.NS, func() (err error) {
			if d.sender, err = NewSender(SenderConfig{Config: cfg, Switches: sw, Rings: []*syncring.Ring{d.ring}, PEName: peNames}); err != nil {
				return err
			}
			bc := cfg
			bc.SyncID = 0 // accept every master
			d.backup, err = NewReceiver(ReceiverConfig{Config: bc, Switches: sw, Deliver: d.deliver, KnownPE: knownSIP})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.sender.Close(); d.backup.Close() })
		if got := d.sender.Config().MaxLen; got != map[bool]int{false: 1472, true: 1452}[group.Is6()] {
			t.Errorf("master sync_maxlen %d", got)
		}
	}
	// A third backup in B's namespace, same group and port, another syncid.
	var strict *Receiver
	var strictGot int
	err := lab.Do(dirs[1].host.NS, func() (err error) {
		strict, err = NewReceiver(ReceiverConfig{Config: Config{Interface: lab.HostIface, SyncID: 99, Group: group},
			Switches: sw, Deliver: func(*Entry) bool { strictGot++; return true }, KnownPE: knownSIP})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { strict.Close() })
	for _, run := range []func(context.Context) error{dirs[0].sender.Run, dirs[0].backup.Run, dirs[1].sender.Run, dirs[1].backup.Run, strict.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}

	const n = 500
	want := map[string]map[string]syncproto.Conn{}
	for i, d := range dirs {
		want[d.name] = map[string]syncproto.Conn{}
		for k := range n {
			var r syncring.Record
			c := netip.MustParseAddr(fmt.Sprintf("10.%d.%d.%d", 1+i, k/250, k%250))
			v, dst := netip.MustParseAddr("10.77.2.1"), netip.MustParseAddr("10.77.1.20")
			if group.Is6() {
				c = netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::%x", 1+i, k))
				v, dst = netip.MustParseAddr("fd77:2::1"), netip.MustParseAddr("fd77:1::20")
			}
			r.SetAddrs(c, v, dst)
			r.Protocol, r.Flags, r.State = syncproto.ProtoUDP, syncproto.FlagTemplate|syncproto.FlagDRoute, syncproto.TplAssured
			r.VPort, r.DPort, r.Timeout, r.FWMark, r.PE = 5060, 5080, uint32(60+k), uint32(k), 1
			id := fmt.Sprintf("%s-%04d-a84b4c76e66710@pc33.atlanta.example.com", d.name, k)
			r.SetPEData([]byte(id))
			for !d.ring.Push(&r) { // the sender drains every 5 ms
				time.Sleep(time.Millisecond)
			}
			var conn syncproto.Conn
			r.Conn(&conn, []byte("sip"))
			conn.PEName, conn.PEData = []byte("sip"), []byte(id)
			want[d.name][id] = conn
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for dirs[0].count() < n || dirs[1].count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s A has %d, B has %d of %d; A %+v B %+v", dirs[0].count(), dirs[1].count(), n, dirs[0].backup.Stats(), dirs[1].backup.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything stray (a director's own messages) would have arrived
	for i, d := range dirs {
		other := dirs[1-i]
		d.mu.Lock()
		for id, c := range d.got {
			if !strings.HasPrefix(id, other.name+"-") {
				t.Errorf("%s's backup heard %s (its own master?)", d.name, id)
				continue
			}
			w := want[other.name][id]
			if c.CAddr != w.CAddr || c.VAddr != w.VAddr || c.DAddr != w.DAddr || c.VPort != w.VPort || c.DPort != w.DPort ||
				c.Timeout != w.Timeout || c.FWMark != w.FWMark || c.Flags != w.Flags || c.State != w.State || string(c.PEName) != "sip" {
				t.Errorf("%s: got %+v, want %+v", id, c, w)
			}
		}
		if len(d.from) != 1 {
			t.Errorf("%s heard from %v", d.name, d.from)
		}
		d.mu.Unlock()
		st := d.backup.Stats()
		// Batched: at least 5 entries a message on average (a full IPv4
		// message holds 15 of these, an IPv6 one 11).
		if st.Entries != n || st.Messages[1] == 0 || st.Messages[1] > n/5*uint64(ports) {
			t.Errorf("%s backup: %+v", d.name, st)
		}
		ss := other.sender.Stats()
		if ss.Entries != n || ss.Messages != st.Messages[1] || ss.SendErrors != 0 || ss.RingDrops != 0 {
			t.Errorf("%s master: %+v (%s's backup got %d messages)", other.name, ss, d.name, st.Messages[1])
		}
		if peers := d.backup.Peers(); len(peers) != 1 || peers[0].SyncID != uint8(10+1-i) {
			t.Errorf("%s peers %+v", d.name, peers)
		}
	}
	if st := strict.Stats(); strictGot != 0 || st.Dropped[syncproto.SyncIDMismatch] == 0 || st.Dropped[syncproto.SyncIDMismatch] != st.Datagrams {
		t.Errorf("syncid 99 backup: delivered %d, stats %+v", strictGot, st)
	}
}
