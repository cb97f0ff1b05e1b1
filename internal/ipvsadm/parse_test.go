package ipvsadm

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args string
		msg  string // UsageError.Stderr("ipvsadm")
		code int
	}{
		{"first option not a command", "-t 1.2.3.4:80 -A", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", 255},
		{"only leftovers", "foo", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", 255},
		{"unknown first option", "--bogus", "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", 255},
		{"second command", "-A -t 1.2.3.4:80 -E", "invalid option `-E'\n", 2},
		{"help after command", "-L -h", "invalid option `-h'\n", 2},
		{"unknown long option", "-A -t 1.2.3.4:80 --foo", "--foo: unknown option\n", 255},
		{"unknown short in cluster", "-Lq", "-Lq: unknown option\n", 255},
		{"missing argument", "-A -t", "-t: missing argument\n", 255},
		{"argument to flag", "-A -u 1.2.3.4:5060 --ops=1", "--ops=1: option does not take an argument\n", 255},
		{"repeated option", "-A -t 1.2.3.4:80 -s rr -s wlc", "multiple 'scheduler' options specified\n", 2},
		{"repeated service", "-A -t 1.2.3.4:80 -u 1.2.3.4:80", "multiple 'service-address' options specified\n", 2},
		{"repeated forward", "-a -t 1.2.3.4:80 -r 10.0.0.1 -g -m", "multiple 'forwarding-method' options specified\n", 2},
		{"missing service", "-A -s rr", "You need to supply the 'service-address' option for the 'add-service' command\n", 2},
		{"missing real server", "-a -t 1.2.3.4:80", "You need to supply the 'real-server' option for the 'add-server' command\n", 2},
		{"weight with add-service", "-A -t 1.2.3.4:80 -w 3", "Illegal 'weight' option with the 'add-service' command\n", 2},
		{"pe with delete-service", "-D -t 1.2.3.4:80 --pe sip", "Illegal 'pe' option with the 'delete-service' command\n", 2},
		{"numeric with clear", "-C -n", "Illegal 'numeric' option with the 'flush' command\n", 2},
		{"pe-strict with add-server", "-a -u 1.2.3.4:5060 -r 10.0.0.1 --pe-strict", "Illegal 'pe-strict' option with the 'add-server' command\n", 2},
		{"list exclusive options", "-L -c -t 1.2.3.4:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n", 2},
		{"list conflicts", "-L -c --stats", "options conflicts in the list command\n", 2},
		{"list timeout persistent-conn", "-L --timeout --persistent-conn", "options conflicts in the list command\n", 2},
		{"zero port", "-A -t 1.2.3.4", "Zero port specified for non-persistent service\n", 2},
		{"ops on tcp", "-A -t 1.2.3.4:80 -o", "One-Packet Scheduling is only for UDP virtual services\n", 2},
		{"bad address", "-A -t 1.2.3.400:80", "illegal virtual server address[:port] specified\n", 2},
		{"digits only address", "-A -t 1234", "illegal virtual server address[:port] specified\n", 2},
		{"bad port", "-A -t 1.2.3.4:65536", "illegal virtual server address[:port] specified\n", 2},
		{"unknown port name", "-A -u 1.2.3.4:http", "illegal virtual server address[:port] specified\n", 2},
		{"ipv6 without port bracket", "-A -u [2001:db8::1]", "illegal virtual server address[:port] specified\n", 2},
		{"host name without resolver", "-A -u lb.example.com:sip", "illegal virtual server address[:port] specified\n", 2},
		{"bad real server", "-a -t 1.2.3.4:80 -r nowhere", "illegal real server address[:port] specified\n", 2},
		{"real server before service", "-a -r 10.0.0.1:http -t 1.2.3.4:80", "illegal real server address[:port] specified\n", 2},
		{"timeout zero", "-A -u 1.2.3.4:5060 -p 0", "invalid timeout value `0' specified\n", 2},
		{"timeout too big", "-A -u 1.2.3.4:5060 -p 2678401", "invalid timeout value `2678401' specified\n", 2},
		{"timeout junk", "-A -u 1.2.3.4:5060 -p 60s", "invalid timeout value `60s' specified\n", 2},
		{"bad mask", "-A -u 1.2.3.4:5060 -p -M 255.255.255.256", "illegal virtual server persistent mask specified\n", 2},
		{"ipv6 mask zero", "-A -u [2001:db8::1]:5060 -p -M 0", "illegal ipv6 netmask specified\n", 2},
		{"ipv6 mask too big", "-A -u [2001:db8::1]:5060 -p -M 129", "illegal ipv6 netmask specified\n", 2},
		{"weight too big", "-a -t 1.2.3.4:80 -r 10.0.0.1 -w 65536", "illegal weight specified\n", 2},
		{"weight negative", "-a -t 1.2.3.4:80 -r 10.0.0.1 -w -1", "illegal weight specified\n", 2},
		{"u-threshold junk", "-a -t 1.2.3.4:80 -r 10.0.0.1 -x x", "illegal u_threshold specified\n", 2},
		{"l-threshold too big", "-a -t 1.2.3.4:80 -r 10.0.0.1 -y 2147483648", "illegal l_threshold specified\n", 2},
		{"sched flag for other scheduler", "-A -t 1.2.3.4:80 -s rr -b sh-port", "incompatible scheduler flag `sh-port'\n", 2},
		{"sched flag default wlc", "-A -t 1.2.3.4:80 -b mh-fallback", "incompatible scheduler flag `mh-fallback'\n", 2},
		{"invalid sched flag", "-A -t 1.2.3.4:80 -s sh -b sh-port,bogus", "invalid scheduler flag `bogus'\n", 2},
		{"set needs three", "--set 900 120", "--set option requires 3 timeout values\n", 2},
		{"set value range", "--set 900 120 2678401", "invalid timeout value `2678401' specified\n", 2},
		{"set extra argument", "--set 1 2 3 4", "unexpected argument 4\n", 2},
		{"unexpected argument", "-C foo", "unexpected argument foo\n", 2},
		{"fwmark unsupported", "-A -f 1", "fwmark services (-f) are not supported by xvs\n", 2},
		{"sctp unsupported", "-A --sctp-service 1.2.3.4:80", "SCTP services (--sctp-service) are not supported by xvs\n", 2},
		{"-6 without -f", "-A -6 -t 1.2.3.4:80", "-6 used before -f\n\n", 2},
		{"address family mix", "-a -u [2001:db8::1]:53 -r 10.0.0.1 -m", "Different address family is allowed only for tunneling servers\n", 2},
		{"tunnel option without -i", "-a -t 1.2.3.4:80 -r 10.0.0.1 --tun-type gue", "Tunnel options conflict with forward method\n", 2},
		{"gue needs port", "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type\n", 2},
		{"ipip with csum", "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-csum", "Illegal 'tun-csum' option with the 'ipip' tunnel type\n", 2},
		{"gre two csum", "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre --tun-csum --tun-nocsum", "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gre' tunnel type\n", 2},
		{"bad tunnel type", "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type vxlan", "illegal tunnel type specified\n", 2},
		{"start-daemon bad state", "--start-daemon primary", "illegal start-daemon parameter specified\n", 2},
		{"stop-daemon bad state", "--stop-daemon primary", "illegal start_daemon specified\n", 2},
		{"syncid range", "--start-daemon master --syncid 256", "illegal syncid specified\n", 2},
		{"mcast group not multicast", "--start-daemon master --mcast-group 10.0.0.1", "invalid IPv4 mcast-group `10.0.0.1'\n", 2},
		{"pe-strict without pe", "-A -u 1.2.3.4:5060 -p --pe-strict", "--pe-strict needs a persistence engine (--pe)\n", 2},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse(strings.Fields(tc.args))
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Parse(%s) error = %v, want *UsageError", tc.args, err)
			}
			if got := ue.Stderr("ipvsadm"); got != tc.msg {
				t.Errorf("Parse(%s) message %q, want %q", tc.args, got, tc.msg)
			}
			if ue.Code != tc.code {
				t.Errorf("Parse(%s) code %d, want %d", tc.args, ue.Code, tc.code)
			}
		})
	}
}

func TestParseUnsupportedIs(t *testing.T) {
	_, err := Parse([]string{"-A", "-f", "1"})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("error %v does not wrap ErrUnsupported", err)
	}
}

func TestParseForms(t *testing.T) {
	a := netip.MustParseAddr
	ap := netip.MustParseAddrPort
	sipSvc := Service{Protocol: ipvs.UDP, Addr: a("10.4.3.192"), Port: 5060, Scheduler: "wlc", Netmask: 0xffffffff}
	for _, tc := range []struct {
		desc  string
		args  []string
		check func(c Command) bool
	}{
		{"no arguments lists", nil, func(c Command) bool { return c.Kind == List }},
		{"help", []string{"-h"}, func(c Command) bool { return c.Kind == Help }},
		{"long help", []string{"--help"}, func(c Command) bool { return c.Kind == Help }},
		{"version", []string{"-v"}, func(c Command) bool { return c.Kind == Version }},
		{"design example", strings.Fields("-A -u 10.4.3.192:5060 -p 60 -M 0.0.0.0 -o --pe sip"), func(c Command) bool {
			want := sipSvc
			want.Persistent, want.Timeout, want.Netmask, want.OnePacket, want.PE = true, 60, 0, true, "sip"
			return c.Kind == AddService && c.Service == want
		}},
		{"long forms", strings.Fields("--add-service --udp-service 10.4.3.192:5060 --scheduler rr --persistent 60 --netmask 255.255.255.0 --ops --pe sip --pe-strict"), func(c Command) bool {
			return c.Service.Scheduler == "rr" && c.Service.Netmask == 0xffffff00 && c.Service.PEStrict && c.Service.OnePacket
		}},
		{"long with =", []string{"-A", "--udp-service=10.4.3.192:5060", "--scheduler=rr", "--persistent=30"}, func(c Command) bool {
			return c.Service.Scheduler == "rr" && c.Service.Timeout == 30
		}},
		{"bare -p is 360", strings.Fields("-A -u 10.4.3.192:5060 -p -s rr"), func(c Command) bool {
			return c.Service.Persistent && c.Service.Timeout == 360 && c.Service.Scheduler == "rr"
		}},
		{"-p at the end", strings.Fields("-A -u 10.4.3.192:5060 -p"), func(c Command) bool { return c.Service.Timeout == 360 }},
		{"-p60 attached", strings.Fields("-A -u 10.4.3.192:5060 -p60"), func(c Command) bool { return c.Service.Timeout == 60 }},
		{"zero port when persistent", strings.Fields("-A -u 10.4.3.192 -p"), func(c Command) bool { return c.Service.Port == 0 }},
		{"-E fills defaults", strings.Fields("-E -u 10.4.3.192:5060"), func(c Command) bool {
			return c.Kind == EditService && c.Service == sipSvc
		}},
		{"port name", strings.Fields("-A -u 10.4.3.192:sip"), func(c Command) bool { return c.Service.Port == 5060 }},
		{"tcp alias www", strings.Fields("-A -t 10.4.3.192:www"), func(c Command) bool { return c.Service.Port == 80 }},
		{"inet_aton short form", strings.Fields("-A -t 10.1:80"), func(c Command) bool { return c.Service.Addr == a("10.0.0.1") }},
		{"inet_aton octal", strings.Fields("-A -t 010.0.0.011:80"), func(c Command) bool { return c.Service.Addr == a("8.0.0.9") }},
		{"bracketed ipv6", strings.Fields("-A -u [2001:db8::1]:5060 -p -M 64"), func(c Command) bool {
			return c.Service.Addr == a("2001:db8::1") && c.Service.Port == 5060 && c.Service.Netmask == 64
		}},
		{"bare ipv6 has port 0", strings.Fields("-A -u 2001:db8::1 -p"), func(c Command) bool {
			return c.Service.Addr == a("2001:db8::1") && c.Service.Port == 0 && c.Service.Netmask == 128
		}},
		{"bracketed ipv4 loses port", strings.Fields("-A -u [10.0.0.1]:5060 -p"), func(c Command) bool {
			return c.Service.Addr == a("10.0.0.1") && c.Service.Port == 0
		}},
		{"-e fills defaults", strings.Fields("-e -u 10.4.3.192:5060 -r 192.168.1.10:5060 -w 0"), func(c Command) bool {
			return c.Kind == EditServer && c.Dest == Dest{Addr: ap("192.168.1.10:5060"), Forward: ipvs.Route, Weight: 0}
		}},
		{"masq keeps its port", strings.Fields("-a -u 10.4.3.192:5060 -r 192.168.1.10:5080 -m -w 5 -x 100 -y 50"), func(c Command) bool {
			return c.Dest == Dest{Addr: ap("192.168.1.10:5080"), Forward: ipvs.Masq, Weight: 5, UThreshold: 100, LThreshold: 50}
		}},
		{"DR port forced", strings.Fields("-a -u 10.4.3.192:5060 -r 192.168.1.10:5080 -g"), func(c Command) bool {
			return c.Dest.Addr == ap("192.168.1.10:5060")
		}},
		{"tunnel port forced", strings.Fields("-a -u 10.4.3.192:5060 -r 192.168.1.10:5080 -i"), func(c Command) bool {
			return c.Dest.Addr == ap("192.168.1.10:5060") && c.Dest.Forward == ipvs.Tunnel
		}},
		{"dest port from service", strings.Fields("-a -u 10.4.3.192:5060 -r 192.168.1.10 -m"), func(c Command) bool {
			return c.Dest.Addr == ap("192.168.1.10:5060")
		}},
		{"tunnel to other family", strings.Fields("-a -u [2001:db8::1]:5060 -r 10.0.0.1 -i"), func(c Command) bool {
			return c.Dest.Addr == ap("10.0.0.1:5060")
		}},
		{"gue tunnel", strings.Fields("-a -u 10.4.3.192:5060 -r 10.0.0.1 -i --tun-type gue --tun-port 6080 --tun-remcsum"), func(c Command) bool {
			return c.Dest.Tunnel == ipvs.TunnelConfig{Type: ipvs.GUE, Port: 6080, Csum: ipvs.TunRemCsum}
		}},
		{"-Ln", []string{"-Ln"}, func(c Command) bool { return c.Kind == List && c.Format.Numeric }},
		{"-Lcn", []string{"-Lcn", "--persistent-conn"}, func(c Command) bool {
			return c.Format == Format{Numeric: true, Connections: true, PersistentConn: true}
		}},
		{"-l one service", strings.Fields("-l -u 10.4.3.192:5060 --stats --exact --nosort --sort"), func(c Command) bool {
			return c.Options.Has(OptService) && c.Format == Format{Stats: true, Exact: true, NoSort: true}
		}},
		{"-X is exact", strings.Fields("-L -X --rate"), func(c Command) bool { return c.Format.Exact && c.Format.Rate }},
		{"list timeout", strings.Fields("-L --timeout"), func(c Command) bool { return c.Format.Timeout }},
		{"list thresholds tun-info", strings.Fields("-L --thresholds --tun-info"), func(c Command) bool { return c.Format.Thresholds && c.Format.TunInfo }},
		{"-Sn", []string{"-Sn"}, func(c Command) bool { return c.Kind == Save && c.Format.Numeric }},
		{"-R", []string{"-R"}, func(c Command) bool { return c.Kind == Restore }},
		{"-C", []string{"--clear"}, func(c Command) bool { return c.Kind == Clear }},
		{"-Z all", []string{"-Z"}, func(c Command) bool { return c.Kind == Zero && !c.Options.Has(OptService) }},
		{"-Z one", strings.Fields("-Z -t 10.0.0.1:80"), func(c Command) bool { return c.Kind == Zero && c.Service.Port == 80 }},
		{"-D", strings.Fields("-D -u 10.4.3.192:5060"), func(c Command) bool { return c.Kind == DeleteService }},
		{"-d", strings.Fields("-d -u 10.4.3.192:5060 -r 192.168.1.10"), func(c Command) bool { return c.Kind == DeleteServer }},
		{"--set", strings.Fields("--set 900 0 300"), func(c Command) bool { return c.Timeouts == Timeouts{900, 0, 300} }},
		{"--set args before", []string{"900", "120", "--set", "300"}, func(c Command) bool { return c.Timeouts == Timeouts{900, 120, 300} }},
		{"-- ends options", []string{"--set", "--", "1", "2", "3"}, func(c Command) bool { return c.Timeouts == Timeouts{1, 2, 3} }},
		{"sched flags", strings.Fields("-A -t 10.0.0.1:80 -s sh -b sh-fallback,sh-port"), func(c Command) bool {
			return c.Service.SchedFlags == sched.Flag1|sched.Flag2
		}},
		{"flag-3", strings.Fields("-A -t 10.0.0.1:80 -b flag-1,,flag-3"), func(c Command) bool {
			return c.Service.SchedFlags == sched.Flag1|sched.Flag3
		}},
		{"start daemon defaults", strings.Fields("--start-daemon master --syncid 5 --mcast-group 224.0.0.82 --mcast-port 8849 --mcast-ttl 2 --sync-maxlen 1400"), func(c Command) bool {
			return c.Daemon == Daemon{State: Master, McastIface: "eth0", SyncID: 5, SyncMaxLen: 1400,
				McastGroup: a("224.0.0.82"), McastPort: 8849, McastTTL: 2}
		}},
		{"stop daemon", strings.Fields("--stop-daemon backup"), func(c Command) bool { return c.Kind == StopDaemon && c.Daemon.State == Backup }},
		{"scheduler truncated", strings.Fields("-A -t 10.0.0.1:80 -s abcdefghijklmnopq"), func(c Command) bool {
			return c.Service.Scheduler == "abcdefghijklmno"
		}},
		{"weight with spaces and sign", []string{"-a", "-t", "10.0.0.1:80", "-r", "10.0.0.2", "-w", " +7"}, func(c Command) bool {
			return c.Dest.Weight == 7
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := Parse(tc.args)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.args, err)
			}
			if !tc.check(c) {
				t.Errorf("Parse(%q) = %+v", tc.args, c)
			}
		})
	}
}

func TestParserLookups(t *testing.T) {
	p := Parser{
		LookupHost: func(name string) (netip.Addr, bool) {
			if name == "lb" {
				return netip.MustParseAddr("10.4.3.192"), true
			}
			return netip.Addr{}, false
		},
		LookupService: func(proto ipvs.Protocol, name string) (uint16, bool) { return 7000, name == "custom" },
	}
	c, err := p.Parse(strings.Fields("-A -u lb:custom"))
	if err != nil || c.Service.Addr != netip.MustParseAddr("10.4.3.192") || c.Service.Port != 7000 {
		t.Errorf("got %+v, %v", c.Service, err)
	}
}

func TestArgvRoundTrip(t *testing.T) {
	for _, line := range []string{
		"-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip --pe-strict -o",
		"-E -t [2001:db8::1]:443 -s sh -b sh-port",
		"-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -m -w 0 -x 10 -y 5",
		"-e -u 10.4.3.192:5060 -r 10.0.0.1:5060 -i -w 3 --tun-type gre --tun-csum",
	} {
		c, err := Parse(strings.Fields(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if got := strings.Join(c.Argv(), " "); got != line {
			t.Errorf("Argv() = %q, want %q", got, line)
		}
		c2, err := Parse(c.Argv())
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Errorf("re-parse of %q: %+v, %v; want %+v", line, c2, err, c)
		}
	}
}

func TestUsageAndVersion(t *testing.T) {
	v := VersionText("xvsadm", "v0.1.0")
	if v != "xvsadm v0.1.0 (ipvsadm v1.31 2019/12/24 compatible, IPVS v1.2.1)\n" {
		t.Errorf("VersionText = %q", v)
	}
	u := Usage("xvsadm", "v0.1.0", []string{"rr", "wlc"}, []string{"sip"})
	for _, want := range []string{
		v + "Usage:\n  xvsadm -A|E virtual-service",
		"one of rr|wlc,\n",
		"persistence engine may be sip,\n",
		"--pe-strict",
		"  xvsadm -h\n\nCommands:\n",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage lacks %q", want)
		}
	}
	if strings.Contains(u, "fwmark") || strings.Contains(u, "sctp") {
		t.Error("Usage mentions unsupported fwmark/sctp services")
	}
}
