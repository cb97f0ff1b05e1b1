package keepalived

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/pe"
)

// Change is the outcome of a reload: the commands that turn the running
// configuration into the file's, and what they do.
type Change struct {
	Rules []Rule
	// Owned are the services the file declares: the ones the next reload
	// may edit or delete.
	Owned map[ipvs.ServiceKey]bool
	// Counts of what the commands do.
	ServicesAdded, ServicesEdited, ServicesDeleted int
	ServersAdded, ServersEdited, ServersDeleted    int
	ChecksChanged                                  int
}

// Summary is a one-line description of the change for the log.
func (c *Change) Summary() string {
	return fmt.Sprintf("services +%d ~%d -%d, real servers +%d ~%d -%d, health checks ~%d",
		c.ServicesAdded, c.ServicesEdited, c.ServicesDeleted, c.ServersAdded, c.ServersEdited, c.ServersDeleted, c.ChecksChanged)
}

// Diff computes the commands that turn cur, the running configuration,
// into the one l declares, as keepalived's reload does: services the file
// no longer declares (among owned, the ones a previous load declared) are
// deleted; a service whose scheduler, flags, persistence, granularity or
// engine changed is edited (-E), not deleted and added, so its real
// servers, their counters and the templates that point to them stay; a
// real server whose forwarding method, weight or thresholds changed is
// edited (-e); new ones are added and missing ones deleted; health checks
// are set where they differ. Services that are neither owned nor in the
// file (from --rules or xvsadm) are left alone; a file that declares one of
// them is refused. Everything is validated against a scratch build first,
// so an error means nothing should be applied.
func (l *Loaded) Diff(cur *ipvs.Snapshot, owned map[ipvs.ServiceKey]bool) (*Change, error) {
	want, err := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
	if err != nil {
		return nil, err
	}
	if err := l.Build(want); err != nil {
		return nil, err
	}
	ws := want.Snapshot()
	ch := &Change{Owned: map[ipvs.ServiceKey]bool{}}
	ds := &diags{}
	byKey := map[ipvs.ServiceKey][]Rule{}
	var timeouts *Rule
	for _, r := range l.Rules {
		if r.Cmd.Kind == ipvsadm.SetTimeout {
			timeouts = &r
			continue
		}
		k := ipvs.ServiceKey{Protocol: ipvs.Protocol(r.Cmd.Service.Protocol), Addr: r.Cmd.Service.Addr, Port: r.Cmd.Service.Port}
		byKey[k] = append(byKey[k], r)
	}
	if timeouts != nil && ws.Timeouts != cur.Timeouts {
		ch.Rules = append(ch.Rules, *timeouts)
	}
	for _, w := range ws.Services() {
		k := w.Key
		ch.Owned[k] = true
		rs := byKey[k]
		live := find(cur, k)
		switch {
		case live == nil:
			ch.Rules = append(ch.Rules, rs...)
			ch.ServicesAdded++
			ch.ServersAdded += len(w.Dests)
			continue
		case !owned[k]:
			ds.invalid(rs[0].Pos, "virtual service %v is already configured by --rules or xvsadm", k)
			continue
		}
		ch.diffService(live, w, rs)
	}
	for _, s := range cur.Services() {
		if owned[s.Key] && !ch.Owned[s.Key] {
			ch.add(Pos{}, "-D", svcFlag(s.Key), addrPort(netip.AddrPortFrom(s.Key.Addr, s.Key.Port)))
			ch.ServicesDeleted++
		}
	}
	if err := ds.err(); err != nil {
		return nil, err
	}
	return ch, nil
}

func find(s *ipvs.Snapshot, k ipvs.ServiceKey) *ipvs.Service {
	for _, svc := range s.Services() {
		if svc.Key == k {
			return svc
		}
	}
	return nil
}

func svcFlag(k ipvs.ServiceKey) string {
	if k.Protocol == ipvs.TCP {
		return "-t"
	}
	return "-u"
}

// add appends a command built here; these always parse.
func (ch *Change) add(pos Pos, argv ...string) {
	cmd, err := ipvsadm.Parse(argv)
	if err != nil {
		panic(fmt.Sprintf("keepalived: reload command %q: %v", argv, err))
	}
	ch.Rules = append(ch.Rules, Rule{Pos: pos, Argv: argv, Cmd: cmd})
}

// withKind returns rule r with its command switched (-A to -E, -a to -e).
func withKind(r Rule, flag string) Rule {
	argv := append([]string{flag}, r.Argv[1:]...)
	cmd, err := ipvsadm.Parse(argv)
	if err != nil {
		panic(fmt.Sprintf("keepalived: reload command %q: %v", argv, err))
	}
	return Rule{Pos: r.Pos, Argv: argv, Cmd: cmd}
}

// diffService adds the commands that turn live into w (same key).
func (ch *Change) diffService(live, w *ipvs.Service, rs []Rule) {
	svc := []string{svcFlag(w.Key), addrPort(netip.AddrPortFrom(w.Key.Addr, w.Key.Port))}
	var addRule Rule
	destRules := map[netip.AddrPort]Rule{}
	var svcCheck *Rule
	destChecks := map[netip.AddrPort]Rule{}
	for _, r := range rs {
		switch r.Cmd.Kind {
		case ipvsadm.AddService:
			addRule = r
		case ipvsadm.AddServer:
			destRules[destAddr(w, r.Cmd.Dest)] = r
		case ipvsadm.HealthCheckCmd:
			if r.Cmd.Options.Has(ipvsadm.OptServer) {
				destChecks[destAddr(w, r.Cmd.Dest)] = r
			} else {
				svcCheck = &r
			}
		}
	}
	if live.ServiceConfig != w.ServiceConfig {
		ch.Rules = append(ch.Rules, withKind(addRule, "-E"))
		ch.ServicesEdited++
	}
	// Real servers: deletions first (a server cannot be both), then edits
	// and additions in file order.
	for _, d := range live.Dests {
		if !slices.ContainsFunc(w.Dests, func(x *ipvs.Dest) bool { return x.Addr == d.Addr }) {
			ch.add(addRule.Pos, append(append([]string{"-d"}, svc...), "-r", addrPort(d.Addr))...)
			ch.ServersDeleted++
		}
	}
	for i := len(w.Dests) - 1; i >= 0; i-- { // IPVS list order is newest first: walk in file order
		wd := w.Dests[i]
		r := destRules[wd.Addr]
		j := slices.IndexFunc(live.Dests, func(x *ipvs.Dest) bool { return x.Addr == wd.Addr })
		if j < 0 {
			ch.Rules = append(ch.Rules, r)
			ch.ServersAdded++
			continue
		}
		ld := live.Dests[j]
		a, b := ld.DestConfig, wd.DestConfig
		a.NextHop, b.NextHop = [6]byte{}, [6]byte{}
		a.Source, b.Source, a.MTU, b.MTU = netip.Addr{}, netip.Addr{}, 0, 0 // resolved egress, not configuration
		if ld.Draining {
			// Keep the operator's drain: edit with weight 0 (which keeps
			// it draining) and move the weight to restore instead.
			restore := b.Weight
			a.Weight, b.Weight = 0, 0
			if a != b {
				e := withKind(r, "-e")
				ch.Rules = append(ch.Rules, Rule{Pos: r.Pos, Argv: replaceWeight(e.Argv, 0), Cmd: reparse(replaceWeight(e.Argv, 0))})
				ch.ServersEdited++
			}
			if ld.DrainWeight != restore {
				ch.add(r.Pos, append(append([]string{"--drain"}, svc...), "-r", addrPort(wd.Addr), "-w", strconv.Itoa(restore))...)
				ch.ServersEdited++
			}
			continue
		}
		if a != b {
			ch.Rules = append(ch.Rules, withKind(r, "-e"))
			ch.ServersEdited++
		}
	}
	if !live.Check.Equal(w.Check) {
		if svcCheck != nil {
			ch.Rules = append(ch.Rules, *svcCheck)
		} else {
			ch.add(addRule.Pos, append(append([]string{"--health-check"}, svc...), "--check", "none")...)
		}
		ch.ChecksChanged++
	}
	for i := len(w.Dests) - 1; i >= 0; i-- {
		wd := w.Dests[i]
		var own *ipvs.HealthCheck
		if wd.OwnCheck {
			own = wd.Check
		}
		var liveOwn *ipvs.HealthCheck
		if j := slices.IndexFunc(live.Dests, func(x *ipvs.Dest) bool { return x.Addr == wd.Addr }); j >= 0 && live.Dests[j].OwnCheck {
			liveOwn = live.Dests[j].Check
		}
		if liveOwn.Equal(own) {
			continue
		}
		if r, ok := destChecks[wd.Addr]; ok {
			ch.Rules = append(ch.Rules, r)
		} else {
			ch.add(addRule.Pos, append(append([]string{"--health-check"}, svc...), "-r", addrPort(wd.Addr), "--check", "none")...)
		}
		ch.ChecksChanged++
	}
}

// destAddr is the address the model gives a real server of w (port 0 is
// the service port; direct routing and tunnels take the service port).
func destAddr(w *ipvs.Service, d ipvsadm.Dest) netip.AddrPort {
	port := d.Addr.Port()
	if port == 0 || d.Forward == ipvs.Route || d.Forward == ipvs.Tunnel {
		port = w.Key.Port
	}
	return netip.AddrPortFrom(d.Addr.Addr().Unmap(), port)
}

func replaceWeight(argv []string, w int) []string {
	out := slices.Clone(argv)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == "-w" {
			out[i+1] = strconv.Itoa(w)
		}
	}
	return out
}

func reparse(argv []string) ipvsadm.Command {
	cmd, err := ipvsadm.Parse(argv)
	if err != nil {
		panic(fmt.Sprintf("keepalived: reload command %q: %v", argv, err))
	}
	return cmd
}
