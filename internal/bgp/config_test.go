package bgp

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePeer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Peer
		err  string
	}{
		{in: "10.0.0.1:65000", want: Peer{Addr: netip.MustParseAddr("10.0.0.1"), ASN: 65000}},
		{in: "[fd00::1]:4200000000", want: Peer{Addr: netip.MustParseAddr("fd00::1"), ASN: 4200000000}},
		{in: "10.0.0.1:65000,port=1179,password=x,hold-time=6s,local-address=10.0.0.2",
			want: Peer{Addr: netip.MustParseAddr("10.0.0.1"), ASN: 65000, Port: 1179, Password: "x", HoldTime: 6 * time.Second,
				LocalAddr: netip.MustParseAddr("10.0.0.2")}},
		{in: "fd00::1:65000", err: "brackets"},
		{in: "10.0.0.1", err: "ADDR:ASN"},
		{in: "10.0.0.1:0", err: "AS number"},
		{in: "10.0.0.1:4294967296", err: "AS number"},
		{in: "0.0.0.0:65000", err: "unicast"},
		{in: "[fd00::1]65000", err: "[IPv6]:ASN"},
		{in: "10.0.0.1:65000,hold-time=2", err: "3..65535"},
		{in: "10.0.0.1:65000,port=0", err: "port"},
		{in: "10.0.0.1:65000,ttl=2", err: "unknown peer option"},
	} {
		p, err := ParsePeer(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || p != tc.want {
			t.Errorf("%s: %+v %v", tc.in, p, err)
		}
	}
	if s := (Peer{Addr: netip.MustParseAddr("fd00::1"), ASN: 1}).String(); s != "[fd00::1]:1" {
		t.Error(s)
	}
}

func TestCommunityAndAttrs(t *testing.T) {
	c := NewConfig()
	for _, kv := range [][2]string{{"community", "65001:100"}, {"community", "10.77.2.1=no-export"},
		{"med", "5"}, {"med", "10.77.2.1=7"}} {
		if err := c.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	a := c.AttrsFor(netip.MustParseAddr("10.77.2.1"))
	if !a.HasMED || a.MED != 7 || len(a.Communities) != 2 || FormatCommunity(a.Communities[0]) != "65001:100" || a.Communities[1] != 0xFFFFFF01 {
		t.Fatalf("%+v", a)
	}
	if b := c.AttrsFor(netip.MustParseAddr("10.77.2.2")); b.MED != 5 || len(b.Communities) != 1 {
		t.Fatalf("%+v", b)
	}
	for _, bad := range []string{"65536:1", "1", "a:b", "x=1:1"} {
		if err := c.Set("community", bad); !errors.Is(err, ErrConfig) {
			t.Errorf("community %q: %v", bad, err)
		}
	}
}

func TestConfigSetAndValidate(t *testing.T) {
	c := NewConfig()
	if c.Enabled() || c.HoldTime != DefaultHoldTime || c.DrainPeriod != DefaultDrainPeriod {
		t.Fatalf("defaults %+v", c)
	}
	if err := c.Set("asn", "65001"); err != nil || !c.Enabled() {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "router id") {
		t.Fatal(err)
	}
	c.Set("router-id", "10.0.0.1")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "no peer") {
		t.Fatal(err)
	}
	c.Set("peer", "10.0.0.254:65000")
	c.Set("peer", "10.0.0.254:65002")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatal(err)
	}
	c.Peers = c.Peers[:1]
	for _, kv := range [][2]string{{"next-hop", "10.0.0.1"}, {"next-hop", "fd00::1"}, {"listen", ":1179"},
		{"drain-period", "0"}, {"hold-time", "30"}, {"announce-delay", "10s"}} {
		if err := c.Set(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.NextHop4.String() != "10.0.0.1" || c.NextHop6.String() != "fd00::1" || c.Listen.Port() != 1179 ||
		c.DrainPeriod != 0 || c.HoldTime != 30*time.Second || c.AnnounceDelay != 10*time.Second {
		t.Fatalf("%+v", c)
	}
	for _, kv := range [][2]string{{"router-id", "fd00::1"}, {"hold-time", "1"}, {"drain-period", "2h"}, {"announce-delay", "1h"},
		{"listen", "10.0.0.1"}, {"next-hop", "::"}, {"nonsense", "1"}, {"asn", "0"}} {
		if err := c.Set(kv[0], kv[1]); !errors.Is(err, ErrConfig) {
			t.Errorf("%s %s: %v", kv[0], kv[1], err)
		}
	}
	for _, s := range Settings {
		if err := (&Config{}).Set(s.Name, ""); err != nil && strings.Contains(err.Error(), "unknown setting") {
			t.Errorf("Settings lists %q, Set does not know it", s.Name)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bgp.conf")
	text := `# director 1
asn 65001
router-id 10.77.1.2   # unique
peer 10.77.1.1:65000
peer [fd77:1::1]:65000
--bgp-hold-time 3
password s3cret
community 10.77.2.1=65001:100
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c := NewConfig()
	if err := c.LoadFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable file with a password: %v", err)
	}
	os.Chmod(path, 0o600)
	c = NewConfig()
	if err := c.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if c.ASN != 65001 || len(c.Peers) != 2 || c.HoldTime != 3*time.Second || c.Password != "s3cret" || c.Validate() != nil {
		t.Fatalf("%+v", c)
	}
	os.WriteFile(path, []byte("asn 65001\npeer 10.0.0.1:1 extra\n"), 0o600)
	if err := newConfigPtr().LoadFile(path); err == nil || !strings.Contains(err.Error(), "bgp.conf:2") {
		t.Fatalf("bad line: %v", err)
	}
	os.WriteFile(path, []byte("asn 65001\nhold-time 1\n"), 0o600)
	if err := newConfigPtr().LoadFile(path); err == nil || !strings.Contains(err.Error(), "bgp.conf:2") {
		t.Fatalf("bad value: %v", err)
	}
}

func newConfigPtr() *Config { c := NewConfig(); return &c }

// FuzzConfigLoad: whatever a --bgp-config file holds, Load does not panic,
// every error wraps ErrConfig and names the file, and every peer it
// accepts renders (Peer.String) into a peer that parses back to the same
// address and AS number.
func FuzzConfigLoad(f *testing.F) {
	for _, s := range []string{
		"asn 65001\nrouter-id 10.77.1.2\npeer 10.77.1.1:65000\npeer [fd77:1::1]:65000,port=1179,hold-time=3\n",
		"hold-time 9s # comment\ndrain-period 500ms\nlisten :179\nnext-hop fd00::2\n",
		"community 10.77.2.1=65001:100\ncommunity no-export\nmed 10\nmed [::1]=5\n",
		"peer 10.0.0.1:1,password=x,local-address=10.0.0.2\n--bgp-peer fd00::1:65000\n",
		"asn 0\n", "asn\n", "peer [fd00::1]65000\n", "hold-time 1\n", "drain-period 2m\n", "unknown 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c := NewConfig()
		err := c.Load(strings.NewReader(text), "fuzz.conf")
		if err != nil {
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "fuzz.conf") {
				t.Fatalf("error without ErrConfig or the file's name: %v", err)
			}
			return
		}
		for _, p := range c.Peers {
			q, err := ParsePeer(p.String())
			if err != nil || q.Addr != p.Addr || q.ASN != p.ASN {
				t.Fatalf("peer %+v renders as %q, which parses to %+v, %v", p, p.String(), q, err)
			}
		}
		if c.HoldTime < MinHoldTime || c.HoldTime > MaxHoldTime || c.DrainPeriod < 0 || c.DrainPeriod > MaxDrainPeriod {
			t.Fatalf("hold time %v, drain period %v out of range", c.HoldTime, c.DrainPeriod)
		}
		if c.Enabled() {
			_ = c.Validate()
		}
	})
}
