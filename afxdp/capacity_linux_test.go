package afxdp

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// servicesFilter returns a filter of n UDP services on n distinct IPv4 VIPs
// from base: 2n match entries (service and VIP).
func servicesFilter(base netip.Addr, n int) dataplane.Filter {
	var f dataplane.Filter
	a := base
	for range n {
		f.Services = append(f.Services, dataplane.ServiceMatch{Protocol: packet.ProtoUDP, Addr: a, Port: 5060})
		a = a.Next()
	}
	return f
}

// The filter's capacity is checked before anything changes, and a full
// filter can be replaced by a completely different full one: the update
// must never need more than MaxFilterEntries entries at once, and a failed
// update must leave the running filter as it was (issue 10 item 2) — on
// every interface of a backend that serves two.
func TestFilterCapacity(t *testing.T) {
	skipUnlessRoot(t)
	l := newLab(t)
	run(t, "ip", "-n", l.nsA, "link", "add", "vx", "type", "veth", "peer", "name", "vy")
	run(t, "ip", "-n", l.nsA, "link", "set", "vx", "up")
	run(t, "ip", "-n", l.nsA, "link", "set", "vy", "up")
	b := l.open(dataplane.Options{Ifaces: []string{l.a, "vx"}, XDPMode: dataplane.XDPGeneric, ZeroCopy: dataplane.ZeroCopyOff})
	defer b.Close()

	half := MaxFilterEntries / 2
	full := servicesFilter(netip.MustParseAddr("10.64.0.1"), half)
	over := servicesFilter(netip.MustParseAddr("10.64.0.1"), half+1)
	if err := b.Check(full); err != nil {
		t.Fatalf("Check of a full filter: %v", err)
	}
	if err := b.Check(over); !errors.Is(err, dataplane.ErrFilterTooLarge) {
		t.Fatalf("Check of %d entries: %v, want ErrFilterTooLarge", 2*(half+1), err)
	}
	if err := b.Update(full); err != nil {
		t.Fatal(err)
	}
	if n := mapLen(t, b); n != MaxFilterEntries {
		t.Fatalf("%d entries after a full update", n)
	}
	// A different full filter: none of its keys is in the running one.
	other := servicesFilter(netip.MustParseAddr("10.96.0.1"), half)
	if err := b.Update(other); err != nil {
		t.Fatalf("replacing a full filter with another: %v", err)
	}
	if n := mapLen(t, b); n != MaxFilterEntries {
		t.Fatalf("%d entries after the replacement", n)
	}
	if err := b.Update(over); !errors.Is(err, dataplane.ErrFilterTooLarge) {
		t.Fatalf("Update beyond capacity: %v", err)
	}
	// The refused update left the running filter whole, and updates still work.
	if n := mapLen(t, b); n != MaxFilterEntries {
		t.Fatalf("%d entries after a refused update", n)
	}
	if err := b.Update(servicesFilter(netip.MustParseAddr("10.96.0.1"), 10)); err != nil {
		t.Fatal(err)
	}
	if n := mapLen(t, b); n != 20 {
		t.Fatalf("%d entries after shrinking to 10 services", n)
	}
}

// mapLen counts the IPv4 filter entries, which every interface must hold
// alike.
func mapLen(t *testing.T, b *Backend) int {
	t.Helper()
	counts := make([]int, len(b.ifs))
	for i, f := range b.ifs {
		var k key4
		var v uint32
		it := f.prog.match4.Iterate()
		for it.Next(&k, &v) {
			counts[i]++
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range counts {
		if n != counts[0] {
			t.Fatalf("interface %s holds %d entries, %s %d", b.ifs[i].name, n, b.ifs[0].name, counts[0])
		}
	}
	return counts[0]
}
