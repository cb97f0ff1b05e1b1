package syncd

import (
	"errors"
	"net/netip"
	"testing"
)

func TestResolve(t *testing.T) {
	g6 := netip.MustParseAddr("ff02::81")
	for _, tc := range []struct {
		name string
		in   Config
		role Role
		mtu  int
		want Config
	}{
		{"master defaults", Config{}, Master, 9000, Config{Group: DefaultGroup, Port: 8848, TTL: 1, MaxLen: 1472}},
		{"master IPv6", Config{Group: g6}, Master, 9000, Config{Group: g6, Port: 8848, TTL: 1, MaxLen: 1452}},
		{"backup jumbo", Config{}, Backup, 9000, Config{Group: DefaultGroup, Port: 8848, TTL: 1, MaxLen: 8972}},
		{"backup small MTU", Config{}, Backup, 1280, Config{Group: DefaultGroup, Port: 8848, TTL: 1, MaxLen: 1472}},
		{"backup IPv6 65536", Config{Group: g6}, Backup, 65536, Config{Group: g6, Port: 8848, TTL: 1, MaxLen: 65487}},
		{"master maxlen 1", Config{MaxLen: 1}, Master, 1500, Config{Group: DefaultGroup, Port: 8848, TTL: 1, MaxLen: 1}},
		{"backup maxlen 100", Config{MaxLen: 100}, Backup, 1500, Config{Group: DefaultGroup, Port: 8848, TTL: 1, MaxLen: 1024}},
		{"maxlen 70000", Config{MaxLen: 70000}, Master, 1500, Config{Group: DefaultGroup, Port: 8848, TTL: 1, MaxLen: 65507}},
		{"explicit", Config{SyncID: 5, Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 4, MaxLen: 1400}, Master, 1500,
			Config{SyncID: 5, Group: netip.MustParseAddr("239.1.2.3"), Port: 9000, TTL: 4, MaxLen: 1400}},
	} {
		got, err := tc.in.Resolve(tc.role, tc.mtu)
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, g := range []string{"10.0.0.1", "2001:db8::1"} {
		if _, err := (Config{Group: netip.MustParseAddr(g)}).Resolve(Master, 1500); !errors.Is(err, ErrGroup) {
			t.Errorf("group %s: %v", g, err)
		}
	}
	if _, err := NewSender(SenderConfig{Config: Config{Interface: "no-such-if0"}}); !errors.Is(err, ErrInterface) {
		t.Errorf("unknown interface: %v", err)
	}
}
