package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// NetCounters are one namespace's packet counters: every interface's (as
// /proc/net/dev shows them) and the IP and UDP MIB counters of
// /proc/net/snmp. Together with the machine's [Softnet] counters they say
// where in a lab a datagram was dropped: a veth whose peer's backlog or
// XDP ring was full counts it in its tx_dropped (or the peer's rx_dropped),
// a UDP socket whose buffer was full in Udp.RcvbufErrors, a sender whose
// socket buffer was full in Udp.SndbufErrors.
type NetCounters struct {
	Links map[string]LinkCounters `json:"links"`
	// SNMP holds "Ip.ForwDatagrams", "Udp.RcvbufErrors", … (Ip, Udp and
	// UdpLite lines).
	SNMP map[string]uint64 `json:"snmp"`
}

// LinkCounters are an interface's packet counters. RxDropped is
// /proc/net/dev's rx "drop" column (rx_dropped + rx_missed_errors; for a
// veth also its XDP program's drops and failed redirects), TxDropped its tx
// "drop" column.
type LinkCounters struct {
	RxPackets uint64 `json:"rx_packets"`
	RxErrors  uint64 `json:"rx_errors,omitempty"`
	RxDropped uint64 `json:"rx_dropped,omitempty"`
	TxPackets uint64 `json:"tx_packets"`
	TxErrors  uint64 `json:"tx_errors,omitempty"`
	TxDropped uint64 `json:"tx_dropped,omitempty"`
}

// Softnet are one CPU's backlog counters (/proc/net/softnet_stat, the same
// in every namespace): Dropped counts packets refused because the CPU's
// input backlog held net.core.netdev_max_backlog already (where veth
// delivers when the receiving end runs no XDP), TimeSqueeze the NAPI runs
// that ended with work left (budget or time exhausted).
type Softnet struct {
	Processed   uint64 `json:"processed"`
	Dropped     uint64 `json:"dropped"`
	TimeSqueeze uint64 `json:"time_squeeze"`
}

// ReadNetCounters reads namespace ns's counters.
func ReadNetCounters(ns string) (NetCounters, error) {
	var c NetCounters
	err := Do(ns, func() error {
		// /proc/thread-self/net is the namespace of this (locked) thread;
		// /proc/net would be the process's.
		dev, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		if c.Links, err = ParseNetDev(bytes.NewReader(dev)); err != nil {
			return err
		}
		snmp, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		c.SNMP, err = ParseSNMP(bytes.NewReader(snmp))
		return err
	})
	if err != nil {
		return NetCounters{}, fmt.Errorf("lab: counters of %s: %w", ns, err)
	}
	return c, nil
}

// ReadSoftnet reads the machine's per-CPU backlog counters.
func ReadSoftnet() ([]Softnet, error) {
	f, err := os.Open("/proc/net/softnet_stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseSoftnet(f)
}

// Counters reads the counters of every namespace of the lab, by namespace
// name.
func (l *Lab) Counters() (map[string]NetCounters, error) {
	out := map[string]NetCounters{}
	for _, ns := range l.Namespaces() {
		c, err := ReadNetCounters(ns)
		if err != nil {
			return nil, err
		}
		out[ns] = c
	}
	return out, nil
}

// Sub returns c - before, counter by counter (a counter missing before
// counts from zero; one that went backwards, an interface re-created,
// gives its value after).
func (c NetCounters) Sub(before NetCounters) NetCounters {
	d := NetCounters{Links: map[string]LinkCounters{}, SNMP: map[string]uint64{}}
	for name, a := range c.Links {
		b := before.Links[name]
		d.Links[name] = LinkCounters{
			RxPackets: sub(a.RxPackets, b.RxPackets), RxErrors: sub(a.RxErrors, b.RxErrors), RxDropped: sub(a.RxDropped, b.RxDropped),
			TxPackets: sub(a.TxPackets, b.TxPackets), TxErrors: sub(a.TxErrors, b.TxErrors), TxDropped: sub(a.TxDropped, b.TxDropped),
		}
	}
	for k, v := range c.SNMP {
		d.SNMP[k] = sub(v, before.SNMP[k])
	}
	return d
}

// SubSoftnet returns after - before per CPU.
func SubSoftnet(after, before []Softnet) []Softnet {
	d := make([]Softnet, len(after))
	for i, a := range after {
		var b Softnet
		if i < len(before) {
			b = before[i]
		}
		d[i] = Softnet{Processed: sub32(a.Processed, b.Processed), Dropped: sub32(a.Dropped, b.Dropped), TimeSqueeze: sub32(a.TimeSqueeze, b.TimeSqueeze)}
	}
	return d
}

// sub32 subtracts the kernel's 32-bit softnet counters, which wrap.
func sub32(a, b uint64) uint64 { return uint64(uint32(a) - uint32(b)) }

func sub(a, b uint64) uint64 {
	if a < b {
		return a
	}
	return a - b
}

// ParseNetDev parses /proc/net/dev.
func ParseNetDev(r io.Reader) (map[string]LinkCounters, error) {
	out := map[string]LinkCounters{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue // the two header lines
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("lab: /proc/net/dev: %d fields for %s, want 16", len(f), strings.TrimSpace(name))
		}
		var v [16]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("lab: /proc/net/dev: %s: %w", strings.TrimSpace(name), err)
			}
			v[i] = n
		}
		// rx: bytes packets errs drop fifo frame compressed multicast;
		// tx: bytes packets errs drop fifo colls carrier compressed.
		out[strings.TrimSpace(name)] = LinkCounters{RxPackets: v[1], RxErrors: v[2], RxDropped: v[3], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11]}
	}
	return out, sc.Err()
}

// ParseSNMP parses the Ip, Udp and UdpLite lines of /proc/net/snmp (pairs
// of a header line and a value line) into "Proto.Name" keys.
func ParseSNMP(r io.Reader) (map[string]uint64, error) {
	out := map[string]uint64{}
	sc := bufio.NewScanner(r)
	var head []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		proto := strings.TrimSuffix(f[0], ":")
		if proto != "Ip" && proto != "Udp" && proto != "UdpLite" {
			continue
		}
		if len(head) == 0 || head[0] != f[0] {
			head = f // the header line
			continue
		}
		if len(f) != len(head) {
			return nil, fmt.Errorf("lab: /proc/net/snmp: %s: %d values for %d names", proto, len(f)-1, len(head)-1)
		}
		for i := 1; i < len(f); i++ {
			n, err := strconv.ParseInt(f[i], 10, 64) // some (Ip.Forwarding) are small signed values
			if err != nil {
				return nil, fmt.Errorf("lab: /proc/net/snmp: %s.%s: %w", proto, head[i], err)
			}
			out[proto+"."+head[i]] = uint64(n)
		}
		head = nil
	}
	return out, sc.Err()
}

// ParseSoftnet parses /proc/net/softnet_stat: one line per CPU, hexadecimal
// columns processed, dropped, time_squeeze, ….
func ParseSoftnet(r io.Reader) ([]Softnet, error) {
	var out []Softnet
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("lab: softnet_stat: %d columns, want at least 3", len(f))
		}
		var v [3]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 16, 32)
			if err != nil {
				return nil, fmt.Errorf("lab: softnet_stat: %w", err)
			}
			v[i] = n
		}
		out = append(out, Softnet{Processed: v[0], Dropped: v[1], TimeSqueeze: v[2]})
	}
	return out, sc.Err()
}
