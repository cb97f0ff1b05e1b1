package control

import (
	"bytes"
	"net/netip"
	"strconv"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/pipeline"
	"github.com/xvs-lb/xvs/pe"
	"github.com/xvs-lb/xvs/table"
)

// SaveRules renders a configuration as xvsadm -S prints it (f.Numeric for
// -S -n): --sysctl lines for the IPVS sysctls not at their defaults, then
// ipvsadm's rules plus the xvs extension lines (health checks, drains). It
// is the same rendering the control server uses, for tools that print a
// configuration without a daemon (xvs rules).
func SaveRules(s *ipvs.Snapshot, f ipvsadm.Format, n ipvsadm.Names) []byte {
	return ipvsadm.AppendSave(appendSysctlSave(nil, s), serviceViews(s, nil), f, n)
}

// rateFunc returns the estimated rates of a Stats (nil: zero rates).
type rateFunc func(*ipvs.Stats) ipvs.Rates

// serviceViews converts a snapshot into ipvsadm's view structs, services in
// the order they were added and destinations in IPVS list order (ipvsadm
// sorts them unless --nosort).
func serviceViews(s *ipvs.Snapshot, rates rateFunc) []ipvsadm.ServiceView {
	if s == nil {
		return nil
	}
	out := make([]ipvsadm.ServiceView, 0, len(s.Services()))
	for _, svc := range s.Services() {
		out = append(out, serviceView(svc, rates))
	}
	return out
}

func serviceView(svc *ipvs.Service, rates rateFunc) ipvsadm.ServiceView {
	v := ipvsadm.ServiceView{
		Protocol:   svc.Key.Protocol,
		Addr:       svc.Key.Addr,
		Port:       svc.Key.Port,
		Scheduler:  svc.Scheduler,
		SchedFlags: svc.SchedFlags,
		Persistent: svc.Persistent,
		Timeout:    svc.Timeout,
		Netmask:    netmask(svc.Key.Addr, svc.Netmask),
		PE:         svc.PE,
		OnePacket:  svc.OnePacket,
		PEStrict:   svc.PEStrict,
		Check:      checkView(svc.Check),
	}
	c := svc.Stats.Read()
	v.Stats = stats(c)
	if rates != nil {
		v.Rates = rates(svc.Stats)
	}
	v.Dests = make([]ipvsadm.DestView, 0, len(svc.Dests))
	for _, d := range svc.Dests {
		dc := d.Stats.Read()
		dv := ipvsadm.DestView{
			Addr:         d.Addr.Addr(),
			Port:         d.Addr.Port(),
			Forward:      forward(d),
			Tunnel:       d.Tunnel,
			Weight:       uint32(d.Weight),
			ActiveConns:  gauge(dc.ActiveConns),
			InactConns:   gauge(dc.InactConns),
			PersistConns: gauge(dc.PersistConns),
			UThreshold:   d.Upper,
			LThreshold:   d.Lower,
			Stats:        stats(dc),
			Down:         d.Down,
			Draining:     d.Draining,
			DrainWeight:  uint32(d.DrainWeight),
			DynWeight:    uint32(d.DynWeight),
			HasDynWeight: d.HasDynWeight,
		}
		if d.OwnCheck {
			dv.Check = checkView(d.Check)
		}
		if rates != nil {
			dv.Rates = rates(d.Stats)
		}
		v.Dests = append(v.Dests, dv)
	}
	return v
}

// forward is the method -L shows: Local for a real server on this host
// (IPVS's LOCALNODE), else the configured one.
func forward(d *ipvs.Dest) ipvs.Forward {
	if d.Local {
		return ipvs.Local
	}
	return d.Fwd
}

// checkView converts a service's health check for -S and -L --health.
func checkView(h *ipvs.HealthCheck) *ipvsadm.CheckView {
	if h == nil {
		return nil
	}
	v := &ipvsadm.CheckView{Type: h.Type.String(), Interval: h.Interval, Timeout: h.Timeout, Fail: h.Fail, Rise: h.Rise,
		Port: h.Port, OnFail: h.OnFail.String(), RetryInterval: h.RetryInterval, StartDown: h.StartDown,
		ScriptUser: h.ScriptUser, Dynamic: h.Dynamic, URL: h.URL, Digest: h.Digest, VirtualHost: h.VirtualHost}
	if len(h.Script) > 0 {
		v.Script = ipvsadm.JoinCommand(h.Script)
	}
	for i, r := range h.Codes {
		if i > 0 {
			v.Codes += ","
		}
		v.Codes += strconv.Itoa(int(r.Lo))
		if r.Hi != r.Lo {
			v.Codes += "-" + strconv.Itoa(int(r.Hi))
		}
	}
	return v
}

// netmask converts the model's -M into ipvsadm's representation: an IPv4
// mask in host byte order, or an IPv6 prefix length.
func netmask(a netip.Addr, m ipvs.Netmask) uint32 {
	if a.Is4() {
		if m.IsDefault() {
			return 0xffffffff
		}
		ma, err := netip.ParseAddr(m.String())
		if err != nil || !ma.Is4() {
			return 0xffffffff
		}
		b := ma.As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	if m.IsDefault() {
		return 128
	}
	n, err := strconv.Atoi(m.String())
	if err != nil {
		return 128
	}
	return uint32(n)
}

func stats(c ipvs.Counters) ipvsadm.Stats {
	return ipvsadm.Stats{Conns: c.Conns, InPkts: c.InPkts, OutPkts: c.OutPkts, InBytes: c.InBytes, OutBytes: c.OutBytes}
}

// gauge clamps a summed live gauge to the kernel's unsigned column (the sum
// may be briefly negative while workers publish).
func gauge(n int64) uint32 {
	if n < 0 {
		return 0
	}
	return uint32(min(n, 1<<32-1))
}

// findService returns the view of the service key names, if it exists.
func findService(svcs []ipvsadm.ServiceView, proto ipvs.Protocol, a netip.Addr, port uint16) (ipvsadm.ServiceView, bool) {
	for _, s := range svcs {
		if s.Protocol == proto && s.Addr == a.Unmap() && s.Port == port {
			return s, true
		}
	}
	return ipvsadm.ServiceView{}, false
}

// appendTemplateViews appends templates as -Lc rows: state NONE/ASSURED,
// client port 0, the real server looked up by its DestID in the snapshot (a
// template of a deleted destination shows the unspecified address, port 0),
// pe name and pe data as the engine shows them.
func appendTemplateViews(out []ipvsadm.ConnView, s *ipvs.Snapshot, ts []table.TemplateInfo) []ipvsadm.ConnView {
	for i := range ts {
		t := &ts[i]
		v := ipvsadm.ConnView{
			Protocol: ipvs.Protocol(t.Protocol),
			Client:   netip.AddrPortFrom(t.Client, 0),
			Virtual:  t.Virtual,
			State:    t.State.String(),
			Expires:  seconds(t.Remaining),
			Synced:   t.Synced,
		}
		v.Dest = destAddr(s, t.Virtual.Addr(), ipvs.DestID(t.Dest))
		if t.PE != 0 {
			if e := pe.ByID(pe.ID(t.PE)); e != nil {
				v.PEName = e.Name()
				v.PEData = shownData(e, t.PEData)
			}
		}
		out = append(out, v)
	}
	return out
}

// appendConnViews appends connections as -Lc rows, with IPVS's state names.
func appendConnViews(out []ipvsadm.ConnView, cs []table.ConnInfo) []ipvsadm.ConnView {
	for i := range cs {
		c := &cs[i]
		out = append(out, ipvsadm.ConnView{
			Protocol: ipvs.Protocol(c.Key.Protocol),
			Client:   c.Key.Client,
			Virtual:  c.Key.Virtual,
			Dest:     c.Real,
			State:    pipeline.StateName(c.State),
			Expires:  seconds(c.Remaining),
			Synced:   c.Synced,
		})
	}
	return out
}

func destAddr(s *ipvs.Snapshot, vip netip.Addr, id ipvs.DestID) netip.AddrPort {
	if s != nil {
		if d := s.Dest(id); d != nil {
			return d.Addr
		}
	}
	if vip.Is4() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
}

// seconds is the kernel's expiry column: whole seconds left, rounded down.
func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(d/time.Second, 1<<32-1))
}

// shownData returns the bytes to hand ipvsadm.AppendConns so that the row
// shows exactly the engine's Show output. AppendConns escapes pe data itself
// (ipvsadm.AppendPEData, the same escaping as the built-in engines' Show);
// for an engine whose Show differs, the shown text is turned back into the
// bytes that AppendPEData renders as that text, when there are such bytes.
func shownData(e pe.Engine, data []byte) []byte {
	shown := e.Show(nil, data)
	if bytes.Equal(shown, ipvsadm.AppendPEData(nil, data)) {
		return data
	}
	raw := unescapePEData(shown)
	if bytes.Equal(ipvsadm.AppendPEData(nil, raw), shown) {
		return raw
	}
	return data
}

// unescapePEData inverts ipvsadm.AppendPEData's \xHH escapes.
func unescapePEData(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(string(s[i+2:i+4]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}
