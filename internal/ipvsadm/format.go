package ipvsadm

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/sched"
)

// IPVSVersion is the IPVS version ipvsadm reports (IP_VS_VERSION_CODE).
const IPVSVersion = "1.2.1"

// AppendBanner appends the first line of -L: "IP Virtual Server version 1.2.1
// (size=4096)". size <= 0 means DefaultConnTableSize.
func AppendBanner(b []byte, size int) []byte {
	if size <= 0 {
		size = DefaultConnTableSize
	}
	return fmt.Appendf(b, "IP Virtual Server version %s (size=%d)\n", IPVSVersion, size)
}

// padRight appends s left-justified in a field of w bytes (printf %-ws).
func padRight(b []byte, s string, w int) []byte {
	b = append(b, s...)
	for i := len(s); i < w; i++ {
		b = append(b, ' ')
	}
	return b
}

// padLeft appends s right-justified in a field of w bytes (printf %ws).
func padLeft(b []byte, s string, w int) []byte {
	for i := len(s); i < w; i++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// appendLargeNum is ipvsadm's print_largenum.
func appendLargeNum(b []byte, n uint64, exact bool) []byte {
	if exact {
		s := strconv.FormatUint(n, 10)
		w := len(s) + 1
		if len(s) <= 8 {
			w = 9
		}
		return padLeft(b, s, w)
	}
	switch {
	case n < 100_000_000:
		return padLeft(b, utoa(n), 9)
	case n < 1_000_000_000:
		return append(padLeft(b, utoa(n/1000), 8), 'K')
	case n < 100_000_000_000:
		return append(padLeft(b, utoa(n/1_000_000), 8), 'M')
	case n < 100_000_000_000_000:
		return append(padLeft(b, utoa(n/1_000_000_000), 8), 'G')
	}
	return append(padLeft(b, utoa(n/1_000_000_000_000), 8), 'T')
}

// addrPortName is ipvsadm's addrport_to_anyname: "addr:port" for IPv4,
// "[addr]:port" for IPv6, names unless numeric, at most 59 bytes.
func addrPortName(a netip.Addr, port uint16, proto ipvs.Protocol, numeric bool, n Names) string {
	host := ntop(a)
	portName := utoa(uint64(port))
	if !numeric {
		if n.Host != nil {
			if h, ok := n.Host(a); ok {
				host = h
			}
		}
		lookup := n.Service
		if lookup == nil {
			lookup = ServiceName
		}
		if s, ok := lookup(proto, port); ok {
			portName = s
		}
	}
	var s string
	if a.Is4() {
		s = host + ":" + portName
	} else {
		s = "[" + host + "]:" + portName
	}
	return truncate(s, maxAddrPortName)
}

func maskString(s ServiceView) string {
	if s.Addr.Is4() {
		if s.Netmask == 0xffffffff {
			return ""
		}
		m := s.Netmask
		return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
	}
	if s.Netmask == 128 {
		return ""
	}
	return utoa(uint64(s.Netmask))
}

// appendTitle is ipvsadm's print_title.
func appendTitle(b []byte, f Format) []byte {
	switch {
	case f.Stats:
		return fmt.Appendf(b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f.Rate:
		return fmt.Appendf(b, "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f.Thresholds:
		return fmt.Appendf(b, "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f.PersistentConn:
		return fmt.Appendf(b, "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n",
			"Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f.TunInfo:
		return append(b, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"...)
	}
	return append(b, "Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"...)
}

// saveServiceArgs are the "-t host:port" arguments of -S lines.
func saveServiceArgs(s ServiceView, numeric bool, n Names) []string {
	return []string{protoFlag(s.Protocol), addrPortName(s.Addr, s.Port, s.Protocol, numeric, n)}
}

// saveServiceLine returns ipvsadm -S -n's "-A …" arguments.
func saveServiceLine(s ServiceView, n Names) []string { return saveServiceLineFmt(s, true, n) }

func saveServiceLineFmt(s ServiceView, numeric bool, n Names) []string {
	a := append([]string{"-A"}, saveServiceArgs(s, numeric, n)...)
	a = append(a, "-s", s.Scheduler)
	if s.Persistent {
		a = append(a, "-p", utoa(uint64(s.Timeout)))
		if m := maskString(s); m != "" {
			a = append(a, "-M", m)
		}
	}
	if s.PE != "" {
		a = append(a, "--pe", s.PE)
	}
	if s.PEStrict {
		a = append(a, "--pe-strict")
	}
	if s.OnePacket {
		a = append(a, "-o")
	}
	if s.SchedFlags&sched.AllFlags != 0 {
		a = append(a, "-b", sched.FormatFlags(s.Scheduler, s.SchedFlags))
	}
	return a
}

var tunCsumOpts = [...]string{"--tun-nocsum", "--tun-csum", "--tun-remcsum"}
var tunCsumInfo = [...]string{"-c", "+c", "r+c"}

func saveDestLine(s ServiceView, d DestView, n Names) []string {
	return saveDestLineFmt(s, d, true, n)
}

// saveDestLineFmt returns ipvsadm -S's "-a …" arguments.
func saveDestLineFmt(s ServiceView, d DestView, numeric bool, n Names) []string {
	a := append([]string{"-a"}, saveServiceArgs(s, numeric, n)...)
	a = append(a, "-r", addrPortName(d.Addr, d.Port, s.Protocol, numeric, n), forwardFlag(d.Forward), "-w", utoa(uint64(d.Weight)))
	if d.Forward != ipvs.Tunnel {
		return a
	}
	switch d.Tunnel.Type {
	case ipvs.GRE:
		return append(a, "--tun-type", "gre", tunCsumOpts[d.Tunnel.Csum%3])
	case ipvs.GUE:
		return append(a, "--tun-type", "gue", "--tun-port", utoa(uint64(d.Tunnel.Port)), tunCsumOpts[d.Tunnel.Csum%3])
	}
	return append(a, "--tun-type", "ipip")
}

// appendArgs appends a -S line: the arguments joined by spaces. An
// argument that RuleTokens would split or cut (a blank, a quote, a
// backslash, a leading '#', or empty) is written in double quotes with
// '"' and '\\' escaped; ipvsadm's own arguments never are.
func appendArgs(b []byte, args []string) []byte {
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendRuleArg(b, a)
	}
	return append(b, '\n')
}

func appendRuleArg(b []byte, a string) []byte {
	if a != "" && !strings.ContainsAny(a, " \t\r\"\\") && a[0] != '#' && a != "ipvsadm" {
		return append(b, a...)
	}
	b = append(b, '"')
	for i := 0; i < len(a); i++ {
		if a[i] == '"' || a[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, a[i])
	}
	return append(b, '"')
}

func tunInfo(d DestView) string {
	if d.Forward != ipvs.Tunnel {
		return "n/a"
	}
	switch d.Tunnel.Type {
	case ipvs.IPIP:
		return "ipip"
	case ipvs.GUE:
		return fmt.Sprintf("gue:%d:%s", d.Tunnel.Port, tunCsumInfo[d.Tunnel.Csum%3])
	case ipvs.GRE:
		return "gre:" + tunCsumInfo[d.Tunnel.Csum%3]
	}
	return "n/a"
}

// appendServiceEntry is ipvsadm's print_service_entry (save or list).
func appendServiceEntry(b []byte, s ServiceView, f Format, save bool, n Names) []byte {
	dests := s.Dests
	if !f.NoSort {
		dests = SortDests(dests)
	}
	if save {
		b = appendArgs(b, saveServiceLineFmt(s, f.Numeric, n))
		for _, d := range dests {
			b = appendArgs(b, saveDestLineFmt(s, d, f.Numeric, n))
		}
		return appendSaveExtensions(b, s, dests, f.Numeric, n)
	}
	name := fmt.Sprintf("%-4s %s", s.Protocol, addrPortName(s.Addr, s.Port, s.Protocol, f.Numeric, n))
	if !s.Addr.Is6() {
		name = truncate(name, listServiceNameWidth)
	}
	switch {
	case f.Stats:
		b = padRight(b, name, 33)
		for _, v := range [...]uint64{s.Stats.Conns, s.Stats.InPkts, s.Stats.OutPkts, s.Stats.InBytes, s.Stats.OutBytes} {
			b = appendLargeNum(b, v, f.Exact)
		}
	case f.Rate:
		b = padRight(b, name, 33)
		for _, v := range [...]uint64{s.Rates.CPS, s.Rates.InPPS, s.Rates.OutPPS, s.Rates.InBPS, s.Rates.OutBPS} {
			b = appendLargeNum(b, v, f.Exact)
		}
	default:
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, s.Scheduler...)
		if s.SchedFlags&sched.AllFlags != 0 {
			b = append(b, " ("...)
			b = append(b, sched.FormatFlags(s.Scheduler, s.SchedFlags)...)
			b = append(b, ')')
		}
		if s.Persistent {
			b = append(b, " persistent "...)
			b = append(b, utoa(uint64(s.Timeout))...)
			if m := maskString(s); m != "" {
				b = append(b, " mask "...)
				b = append(b, m...)
			}
			if s.PE != "" {
				b = append(b, " pe "...)
				b = append(b, s.PE...)
			}
		}
		if s.OnePacket {
			b = append(b, " ops"...)
		}
	}
	b = append(b, '\n')

	for _, d := range dests {
		dname := addrPortName(d.Addr, d.Port, s.Protocol, f.Numeric, n)
		if !d.Addr.Is6() {
			dname = truncate(dname, listDestNameWidth)
		}
		b = append(b, "  -> "...)
		switch {
		case f.Stats:
			b = padRight(b, dname, 28)
			for _, v := range [...]uint64{d.Stats.Conns, d.Stats.InPkts, d.Stats.OutPkts, d.Stats.InBytes, d.Stats.OutBytes} {
				b = appendLargeNum(b, v, f.Exact)
			}
			b = append(b, '\n')
		case f.Rate:
			b = fmt.Appendf(b, "%-28s %8d %8d %8d", dname, d.Rates.CPS, d.Rates.InPPS, d.Rates.OutPPS)
			b = appendLargeNum(b, d.Rates.InBPS, f.Exact)
			b = appendLargeNum(b, d.Rates.OutBPS, f.Exact)
			b = append(b, '\n')
		case f.Thresholds:
			b = fmt.Appendf(b, "%-28s %-10d %-10d %-10d %-10d\n", dname, d.UThreshold, d.LThreshold, d.ActiveConns, d.InactConns)
		case f.PersistentConn:
			b = fmt.Appendf(b, "%-28s %-9d %-11d %-10d %-10d\n", dname, d.Weight, d.PersistConns, d.ActiveConns, d.InactConns)
		case f.TunInfo:
			b = fmt.Appendf(b, "%-28s %-7s %-13s %-6d %-10d %-10d\n", dname, d.Forward, tunInfo(d), d.Weight, d.ActiveConns, d.InactConns)
		default:
			b = fmt.Appendf(b, "%-28s %-7s %-6d %-10d %-10d\n", dname, d.Forward, d.Weight, d.ActiveConns, d.InactConns)
		}
	}
	return b
}

// AppendList appends the output of ipvsadm -L with the listing options f
// (-n, --stats, --rate, --thresholds, --persistent-conn, --tun-info,
// --exact, --nosort): banner, title and every service with its
// destinations, sorted as ipvsadm sorts them unless f.NoSort.
func AppendList(b []byte, t Table, f Format, n Names) []byte {
	b = AppendBanner(b, t.ConnTableSize)
	b = appendTitle(b, f)
	svcs := t.Services
	if !f.NoSort {
		svcs = SortServices(svcs)
	}
	for _, s := range svcs {
		b = appendServiceEntry(b, s, f, false, n)
	}
	return b
}

// AppendListService appends the output of ipvsadm -L -t|-u service: the
// title and that one service, without the banner.
func AppendListService(b []byte, s ServiceView, f Format, n Names) []byte {
	b = appendTitle(b, f)
	return appendServiceEntry(b, s, f, false, n)
}

// AppendSave appends the output of ipvsadm -S (f.Numeric for -S -n): one
// "-A" line per service followed by its "-a" lines. Thresholds are not
// saved (as in ipvsadm); the xvs extensions --pe-strict, --health-check
// and --drain are (the latter two as lines after the service's -a lines).
func AppendSave(b []byte, svcs []ServiceView, f Format, n Names) []byte {
	if !f.NoSort {
		svcs = SortServices(svcs)
	}
	for _, s := range svcs {
		b = appendServiceEntry(b, s, f, true, n)
	}
	return b
}

// connProtoName is the protocol column of /proc/net/ip_vs_conn.
func connProtoName(p ipvs.Protocol) string {
	if p == 0 {
		return "IP"
	}
	return p.String()
}

// AppendConns appends the output of ipvsadm -Lc (f.Numeric for -n,
// f.PersistentConn for --persistent-conn). With --persistent-conn, rows that
// carry PE data use ipvsadm's row format whose destination and "pe name"
// widths are swapped relative to the header (reproduced on purpose). PE data
// is escaped, see the package doc.
func AppendConns(b []byte, conns []ConnView, f Format, n Names) []byte {
	return AppendConnRows(AppendConnsHeader(b, f), conns, f, n)
}

// AppendConnsHeader appends the title and column header of ipvsadm -Lc;
// AppendConnRows appends rows after it, so that a listing can be written
// in pieces.
func AppendConnsHeader(b []byte, f Format) []byte {
	b = append(b, "IPVS connection entries\n"...)
	if f.PersistentConn {
		return fmt.Appendf(b, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
			"state", "source", "virtual", "destination", "pe name", "pe_data")
	}
	return fmt.Appendf(b, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
}

// AppendConnRows appends the rows of ipvsadm -Lc (see AppendConns).
func AppendConnRows(b []byte, conns []ConnView, f Format, n Names) []byte {
	for _, c := range conns {
		proto := c.Protocol
		cname := addrPortName(c.Client.Addr(), c.Client.Port(), proto, f.Numeric, n)
		vname := addrPortName(c.Virtual.Addr(), c.Virtual.Port(), proto, f.Numeric, n)
		dname := addrPortName(c.Dest.Addr(), c.Dest.Port(), proto, f.Numeric, n)
		expire := fmt.Sprintf("%02d:%02d", c.Expires/60, c.Expires%60)
		b = padRight(b, connProtoName(proto), 3)
		b = append(b, ' ')
		b = padRight(b, expire, 6)
		b = append(b, ' ')
		b = padRight(b, c.State, 11)
		b = append(b, ' ')
		b = padRight(b, cname, 18)
		b = append(b, ' ')
		b = padRight(b, vname, 18)
		b = append(b, ' ')
		if f.PersistentConn && c.PEName != "" && len(c.PEData) > 0 {
			b = padRight(b, dname, 16)
			b = append(b, ' ')
			b = padRight(b, c.PEName, 18)
			b = append(b, ' ')
			b = AppendPEData(b, c.PEData)
		} else {
			b = append(b, dname...)
		}
		if c.Synced {
			b = append(b, SyncedMark...)
		}
		b = append(b, '\n')
	}
	return b
}

// SyncedMark ends the -Lc row of an entry a backup received from a master
// (xvs extension): the kernel's name for its origin in
// /proc/net/ip_vs_conn_sync. Rows of local entries are ipvsadm's.
const SyncedMark = " SYNC"

// AppendPEData appends persistence-engine data for display: printable
// ASCII bytes as they are, every other byte, the space and the backslash
// as \xHH, so that a hostile Call-ID can neither inject terminal control
// sequences nor split the row into more columns.
func AppendPEData(b []byte, data []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range data {
		if c <= ' ' || c >= 0x7f || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// AppendTimeout appends the output of ipvsadm -L --timeout.
func AppendTimeout(b []byte, t Timeouts) []byte {
	return fmt.Appendf(b, "Timeout (tcp tcpfin udp): %d %d %d\n", t.TCP, t.TCPFin, t.UDP)
}

// AppendDaemon appends the output of ipvsadm -L --daemon for the running
// sync daemons (zero-valued optional fields are omitted, as the kernel
// reports them unset).
func AppendDaemon(b []byte, daemons []Daemon) []byte {
	for _, d := range daemons {
		var typ string
		switch {
		case d.State&Master != 0:
			typ = "master"
		case d.State&Backup != 0:
			typ = "backup"
		default:
			continue
		}
		b = fmt.Appendf(b, "%s sync daemon (mcast=%s, syncid=%d", typ, d.McastIface, d.SyncID)
		if d.SyncMaxLen != 0 {
			b = fmt.Appendf(b, ", maxlen=%d", d.SyncMaxLen)
		}
		if d.McastGroup.IsValid() {
			b = fmt.Appendf(b, ", group=%s", ntop(d.McastGroup))
		}
		if d.McastPort != 0 {
			b = fmt.Appendf(b, ", port=%d", d.McastPort)
		}
		if d.McastTTL != 0 {
			b = fmt.Appendf(b, ", ttl=%d", d.McastTTL)
		}
		b = append(b, ")\n"...)
	}
	return b
}

// write is the io.Writer form of an Append function.
func write(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// WriteList writes AppendList's output to w.
func WriteList(w io.Writer, t Table, f Format, n Names) error {
	return write(w, AppendList(nil, t, f, n))
}

// WriteSave writes AppendSave's output to w.
func WriteSave(w io.Writer, svcs []ServiceView, f Format, n Names) error {
	return write(w, AppendSave(nil, svcs, f, n))
}

// WriteConns writes AppendConns's output to w.
func WriteConns(w io.Writer, conns []ConnView, f Format, n Names) error {
	return write(w, AppendConns(nil, conns, f, n))
}
