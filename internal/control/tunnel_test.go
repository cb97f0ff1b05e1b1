package control

import (
	"slices"
	"strings"
	"testing"
)

// tunnelRules has a real server of every tunnel type and checksum mode,
// including the other address family (IPv6 servers of an IPv4 service and
// the reverse), in ipvsadm -Sn's words.
const tunnelRules = `-A -u 10.4.3.192:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o
-a -u 10.4.3.192:5060 -r 192.168.1.10:5060 -i -w 1 --tun-type ipip
-a -u 10.4.3.192:5060 -r 192.168.1.11:5060 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-a -u 10.4.3.192:5060 -r 192.168.1.12:5060 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -u 10.4.3.192:5060 -r 192.168.1.13:5060 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-a -u 10.4.3.192:5060 -r 192.168.1.14:5060 -i -w 1 --tun-type gre --tun-nocsum
-a -u 10.4.3.192:5060 -r 192.168.1.15:5060 -i -w 1 --tun-type gre --tun-csum
-a -u 10.4.3.192:5060 -r [2001:db8::10]:5060 -i -w 1 --tun-type ipip
-a -u 10.4.3.192:5060 -r 192.168.1.16:5060 -g -w 1
-A -u [2001:db8::5060]:5060 -s rr
-a -u [2001:db8::5060]:5060 -r 192.168.1.20:5060 -i -w 1 --tun-type gre --tun-csum
-a -u [2001:db8::5060]:5060 -r [2001:db8::20]:5060 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum
`

// TestTunnelRulesRoundTrip: -Sn gives back every tunnel option it was
// given (the model keeps the encapsulation), and -Ln --tun-info shows it in
// ipvsadm's format.
func TestTunnelRulesRoundTrip(t *testing.T) {
	f := newFake(t, 1, tunnelRules)
	s := NewServer(f, Options{})
	got := string(mustRun(t, s, "-Sn"))
	gotLines := strings.Split(strings.TrimSpace(got), "\n")
	wantLines := strings.Split(strings.TrimSpace(tunnelRules), "\n")
	slices.Sort(gotLines)
	slices.Sort(wantLines)
	if !slices.Equal(gotLines, wantLines) {
		t.Errorf("-Sn:\n%s\nwant the lines of\n%s", got, tunnelRules)
	}
	list := string(mustRun(t, s, "-Ln", "--tun-info"))
	for _, l := range []string{
		"  -> 192.168.1.10:5060            Tunnel  ipip          1      0          0         \n",
		"  -> 192.168.1.11:5060            Tunnel  gue:6080:-c   1      0          0         \n",
		"  -> 192.168.1.12:5060            Tunnel  gue:6080:+c   1      0          0         \n",
		"  -> 192.168.1.13:5060            Tunnel  gue:6081:r+c  1      0          0         \n",
		"  -> 192.168.1.14:5060            Tunnel  gre:-c        1      0          0         \n",
		"  -> 192.168.1.15:5060            Tunnel  gre:+c        1      0          0         \n",
		"  -> 192.168.1.16:5060            Route   n/a           1      0          0         \n",
		"  -> [2001:db8::10]:5060          Tunnel  ipip          1      0          0         \n",
		"  -> 192.168.1.20:5060            Tunnel  gre:+c        1      0          0         \n",
	} {
		if !strings.Contains(list, l) {
			t.Errorf("-Ln --tun-info lacks %q:\n%s", l, list)
		}
	}
	// Mixed families are for tunnels only (ipvsadm's message).
	r := run(t, s, "-a", "-u", "10.4.3.192:5060", "-r", "[2001:db8::30]:5060", "-g")
	if r.Code == 0 || !strings.Contains(string(r.Stderr), "Different address family is allowed only for tunneling servers") {
		t.Errorf("IPv6 DR server of an IPv4 service: code %d, %q", r.Code, r.Stderr)
	}
	r = run(t, s, "-a", "-u", "10.4.3.192:5060", "-r", "192.168.1.30:5060", "-i", "--tun-type", "gue")
	if r.Code == 0 || !strings.Contains(string(r.Stderr), "You need to supply the 'tun-port' option for the 'gue' tunnel type") {
		t.Errorf("gue without a port: code %d, %q", r.Code, r.Stderr)
	}
}
