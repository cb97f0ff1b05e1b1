package ipvsadm

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

func TestParseRules(t *testing.T) {
	in := "# xvs rules\n" +
		"\n" +
		"ipvsadm -A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\r\n" +
		"-a\t-u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 1   # first proxy\n" +
		"   \t\n" +
		"-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -m -w 1\n"
	cmds, err := ParseRules(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 3 || cmds[0].Kind != AddService || cmds[1].Kind != AddServer || cmds[2].Kind != AddServer {
		t.Fatalf("got %+v", cmds)
	}
	if cmds[0].Service.PE != "sip" || !cmds[0].Service.OnePacket || cmds[1].Dest.Forward != ipvs.Masq {
		t.Errorf("got %+v", cmds)
	}
	for _, c := range cmds {
		if !c.Mutates() {
			t.Errorf("%v does not mutate", c.Kind)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	for _, tc := range []struct {
		desc, in, want string
		code           int
	}{
		{"bad weight on line 3", "-A -t 1.2.3.4:80\n\n-a -t 1.2.3.4:80 -r 10.0.0.1 -w 70000\n", "rules:3: illegal weight specified", 2},
		{"nested restore", "-C\n-R\n", "rules:2: invalid command line (try -h)", 255},
		{"popt error", "-A -t 1.2.3.4:80 --nope\n", "rules:1: --nope: unknown option", 255},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := ParseRules(strings.NewReader(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Code != tc.code {
				t.Errorf("error %v: want UsageError with code %d", err, tc.code)
			}
		})
	}
	_, err := ParseRules(strings.NewReader("-R\n"))
	if !errors.Is(err, ErrNestedRestore) {
		t.Errorf("nested -R error %v does not wrap ErrNestedRestore", err)
	}
	// Lines have no limit of their own: a long comment is fine; the file
	// as a whole is bounded.
	cmds, err := ParseRules(strings.NewReader("# " + strings.Repeat("x", 1<<20) + "\n-C " + strings.Repeat("y", 100<<10) + "\n-C\n"))
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || len(cmds) != 0 {
		t.Errorf("a long argument: %v, %d commands; want a LineError at line 2", err, len(cmds))
	}
	cmds, err = ParseRules(strings.NewReader("# " + strings.Repeat("x", 1<<20) + "\n-C # " + strings.Repeat("y", 100<<10)))
	if err != nil || len(cmds) != 1 || cmds[0].Kind != Clear {
		t.Errorf("long comments: %v, %v", cmds, err)
	}
	big := strings.NewReader("-C\n" + strings.Repeat("#\n", MaxRulesBytes/2))
	if cmds, err := ParseRules(big); !errors.Is(err, ErrRulesTooLarge) || len(cmds) != 1 {
		t.Errorf("rules of %d bytes: %d commands, %v; want ErrRulesTooLarge", big.Size(), len(cmds), err)
	}
	exact := strings.NewReader(strings.Repeat("#\n", MaxRulesBytes/2))
	if _, err := ParseRules(exact); err != nil {
		t.Errorf("rules of exactly %d bytes: %v", MaxRulesBytes, err)
	}
}

func TestRuleTokens(t *testing.T) {
	for in, want := range map[string]string{
		"ipvsadm -A -t 1.2.3.4:80":    "-A|-t|1.2.3.4:80",
		"  -C\r":                      "-C",
		"-C #comment -A":              "-C",
		"#-A -t 1.2.3.4:80":           "",
		"-A\t-u\t[::1]:53 -p\t":       "-A|-u|[::1]:53|-p",
		"-A -t a#b:80":                "-A|-t|a#b:80",
		"ipvsadm":                     "",
		"ipvsadm ipvsadm -Ln ipvsadm": "-Ln",
	} {
		if got := strings.Join(RuleTokens(in), "|"); got != want {
			t.Errorf("RuleTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

// randomService returns a random valid service with destinations.
func randomService(r *rand.Rand) ServiceView {
	s := ServiceView{Protocol: []ipvs.Protocol{ipvs.TCP, ipvs.UDP}[r.IntN(2)], Port: uint16(1 + r.IntN(65535))}
	v6 := r.IntN(3) == 0
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		s.Addr = netip.AddrFrom16(b)
		s.Netmask = 128
	} else {
		s.Addr = netip.AddrFrom4([4]byte{byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256)), byte(r.UintN(256))})
		s.Netmask = 0xffffffff
	}
	s.Scheduler = []string{"rr", "wrr", "lc", "wlc", "sh", "mh", "sed", "nq"}[r.IntN(8)]
	switch s.Scheduler {
	case "sh", "mh":
		s.SchedFlags = sched.Flags(r.IntN(4)) * sched.Flag1
	default:
		s.SchedFlags = sched.Flags(r.IntN(8)) * sched.Flag1
	}
	if r.IntN(2) == 0 {
		s.Persistent = true
		s.Timeout = uint32(1 + r.IntN(MaxTimeout))
		if r.IntN(2) == 0 {
			s.Port = 0
		}
		if v6 {
			s.Netmask = uint32(1 + r.IntN(128))
		} else {
			s.Netmask = r.Uint32()
		}
	}
	if r.IntN(2) == 0 {
		s.PE = "sip"
		s.PEStrict = r.IntN(2) == 0
	}
	s.OnePacket = s.Protocol == ipvs.UDP && r.IntN(2) == 0
	for range r.IntN(4) {
		d := DestView{Forward: []ipvs.Forward{ipvs.Route, ipvs.Tunnel, ipvs.Masq}[r.IntN(3)], Weight: uint32(r.IntN(MaxWeight + 1))}
		dv6 := v6
		if d.Forward == ipvs.Tunnel && r.IntN(3) == 0 {
			dv6 = !v6
		}
		if dv6 {
			d.Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.UintN(256))})
		} else {
			d.Addr = netip.AddrFrom4([4]byte{192, 168, byte(r.UintN(256)), byte(r.UintN(256))})
		}
		d.Port = uint16(r.IntN(65536))
		if d.Forward != ipvs.Masq {
			d.Port = s.Port
		}
		if d.Forward == ipvs.Tunnel {
			d.Tunnel.Type = ipvs.TunnelType(r.IntN(3))
			switch d.Tunnel.Type {
			case ipvs.GUE:
				d.Tunnel.Port = uint16(1 + r.IntN(65535))
				d.Tunnel.Csum = ipvs.TunnelCsum(r.IntN(3))
			case ipvs.GRE:
				d.Tunnel.Csum = ipvs.TunnelCsum(r.IntN(2))
			}
		}
		s.Dests = append(s.Dests, d)
	}
	return s
}

// TestSaveRestoreRoundTrip: -S -n output of random valid tables, parsed back
// with ParseRules, gives exactly the services and destinations saved.
func TestSaveRestoreRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 500 {
		var svcs []ServiceView
		for range 1 + r.IntN(4) {
			svcs = append(svcs, randomService(r))
		}
		out := AppendSave(nil, svcs, Format{Numeric: true, NoSort: true}, Names{})
		cmds, err := ParseRules(strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("iteration %d: %v\n%s", iter, err, out)
		}
		i := 0
		for _, s := range svcs {
			want := Service{Protocol: s.Protocol, Addr: s.Addr, Port: s.Port, Scheduler: s.Scheduler,
				SchedFlags: s.SchedFlags, Persistent: s.Persistent, Timeout: s.Timeout, Netmask: s.Netmask,
				PE: s.PE, OnePacket: s.OnePacket, PEStrict: s.PEStrict}
			if c := cmds[i]; c.Kind != AddService || c.Service != want {
				t.Fatalf("iteration %d: line %d parsed to %+v, want %+v\n%s", iter, i+1, c.Service, want, out)
			}
			i++
			for _, d := range s.Dests {
				want := Dest{Addr: netip.AddrPortFrom(d.Addr, d.Port), Forward: d.Forward, Weight: d.Weight,
					Tunnel: d.Tunnel}
				if c := cmds[i]; c.Kind != AddServer || c.Dest != want {
					t.Fatalf("iteration %d: line %d parsed to %+v, want %+v\n%s", iter, i+1, c.Dest, want, out)
				}
				i++
			}
		}
		if i != len(cmds) {
			t.Fatalf("iteration %d: %d commands, want %d", iter, len(cmds), i)
		}
	}
}
