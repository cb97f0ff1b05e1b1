package syncpolicy

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"

	"github.com/xvs-lb/xvs/internal/sysctl"
)

// Switches are the IPVS synchronisation sysctls (/proc/sys/net/ipv4/vs/),
// with the kernel's names, units and meaning. They are registered with the
// registry of IPVS switches (package sysctl: VersionSwitch and the other
// *Switch IDs), so xvs run --sysctl and xvsadm --sysctl set them, and a
// configuration snapshot carries their values (FromValues).
type Switches struct {
	// Version is sync_version: the protocol version a master sends, 1 or
	// 0 (IPv4 only, no timeouts, no pe data). Receivers take both.
	Version int
	// Threshold and Period are sync_threshold's two numbers: a connection
	// is synced when its incoming packet count modulo Period equals
	// Threshold (templates skip the packet check); with Period 0 (and
	// RefreshPeriod 0) only once, when the count equals Threshold, and on
	// state changes. 0 <= Threshold < Period, or Period 0.
	Threshold, Period int
	// RefreshPeriod is sync_refresh_period in seconds: a connection or
	// template whose state has not changed is not synced again until its
	// expiry moved by this much (or half its timeout, at least 10 s, if
	// that is less). 0 disables the time check.
	RefreshPeriod int
	// Retries is sync_retries (0..3): with RefreshPeriod, re-send up to
	// this many times, RefreshPeriod/8 apart, against lost messages.
	Retries int
	// PersistMode is sync_persist_mode: 1 syncs only the templates of
	// persistent services, not their connections.
	PersistMode int
	// QueueMax is sync_qlen_max: the most sync messages waiting to be sent;
	// more are dropped (and counted).
	QueueMax int
	// SockSize is sync_sock_size: SO_SNDBUF of the master's and SO_RCVBUF
	// of the backup's sockets, bytes; 0 keeps the system default.
	SockSize int
	// Ports is sync_ports: how many UDP ports (and threads) master and
	// backup use, from the multicast port up; a power of 2, at most
	// MaxPorts.
	Ports int
}

// Limits (include/net/ip_vs.h, ip_vs_ctl.c).
const (
	// MaxPorts is IPVS_SYNC_PORTS_MAX: start_sync_thread clamps sync_ports
	// to it.
	MaxPorts = 64
	// MaxRetries is the upper bound of sync_retries.
	MaxRetries = 3
	// MaxRefreshPeriod keeps RefreshPeriod within what the kernel's
	// proc_dointvec_jiffies accepts (INT_MAX jiffies at HZ=1000).
	MaxRefreshPeriod = 2147483
	// DefaultQueueMax is xvs's sync_qlen_max. The kernel's default is 1/32
	// of the free memory pages, counted as messages (tens of thousands on
	// any server); xvs bounds the queue by count: 1024 messages of up to
	// 1.5 KB is 1.5 MB, minutes of sync traffic at 1000 new calls/s, while
	// the data path's rings absorb bursts in front of it.
	DefaultQueueMax = 1024
	// maxInt bounds the switches the kernel keeps as an int.
	maxInt = 1<<31 - 1
)

// KernelDefaults returns the kernel's defaults (DEFAULT_SYNC_* in
// include/net/ip_vs.h); QueueMax has no fixed kernel default and gets
// DefaultQueueMax.
func KernelDefaults() Switches {
	return Switches{
		Version:   1,
		Threshold: 3,
		Period:    50,
		QueueMax:  DefaultQueueMax,
		Ports:     1,
	}
}

// Defaults returns xvs's defaults: the kernel's, except RefreshPeriod 10
// and Retries 1.
//
// With the kernel's defaults (refresh 0) a template is synced every time
// it is used, because templates skip the packet-count check: under
// one-packet scheduling that is every datagram, so a SIP farm multicasts
// one entry per incoming datagram and the data path builds one sync record
// per packet. With a 10 s refresh period a template is re-sent at most
// every 10 s while it is in use (sooner when its state changes), so the
// backup's copy never expires more than 10 s before the master's; new
// templates are still sent at once, because their expiry moves by the whole
// timeout (except, as in the kernel, a template with a timeout under 10 s,
// which waits until its expiry has moved by 10 s). One retry, 1.25 s later
// at the earliest, covers a lost first message, which would otherwise leave
// the backup without the call for the next 10 s.
func Defaults() Switches {
	s := KernelDefaults()
	s.RefreshPeriod = 10
	s.Retries = 1
	return s
}

// ErrInvalid reports a switch value out of its range; the kernel answers
// such a write with EINVAL.
var ErrInvalid = errors.New("invalid argument")

// The synchronisation switches in the registry of IPVS switches, in the
// kernel's order. Each keeps the kernel's name, range and meaning; the
// registry's default is xvs's (Defaults), with the kernel's noted where it
// differs.
var (
	VersionSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_version", Default: []int64{1}, Min: 0, Max: 1,
		Meaning: "Protocol version the master sync daemon sends: 1 (IPv6, timeouts, fwmarks, the persistence " +
			"engine's name and data, i.e. the SIP Call-ID) or 0 (the original IPv4-only format, which loses the " +
			"Call-ID). Backups receive both. Takes effect at the next message.",
	})
	PortsSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_ports", Default: []int64{1}, Min: 1, Max: MaxPorts,
		Check: func(v []int64) error {
			if bits.OnesCount64(uint64(v[0])) != 1 {
				return errors.New("must be a power of 2")
			}
			return nil
		},
		Meaning: "UDP ports (and threads) the sync daemons use, from --mcast-port up; a power of 2. Read when a " +
			"daemon starts.",
	})
	PersistModeSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_persist_mode", Default: []int64{0}, Min: 0, Max: 1,
		Meaning: "1: for persistent services sync only the persistence templates, not their connections (the " +
			"backup rebuilds connections from the templates).",
	})
	QueueMaxSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_qlen_max", Default: []int64{DefaultQueueMax}, Kernel: "free pages/32", Min: 1, Max: maxInt,
		Meaning: "Most sync messages waiting to be sent; more are dropped and counted. The kernel's default is " +
			"1/32 of the free memory pages; xvs's is a count (1024 messages, about 1.5 MB). Takes effect at once.",
	})
	SockSizeSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_sock_size", Default: []int64{0}, Min: 0, Max: maxInt,
		Meaning: "SO_SNDBUF of the master's and SO_RCVBUF of the backup's sync sockets, in bytes; 0 keeps the " +
			"system default. Read when a daemon starts.",
	})
	ThresholdSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_threshold", Default: []int64{3, 50}, Min: 0, Max: maxInt,
		Check: func(v []int64) error {
			if v[1] != 0 && v[0] >= v[1] {
				return errors.New("need threshold < period, or period 0")
			}
			return nil
		},
		Meaning: "THRESHOLD PERIOD: a connection is synced when its incoming packet count modulo PERIOD equals " +
			"THRESHOLD (persistence templates skip this check); with PERIOD 0 only once, when the count equals " +
			"THRESHOLD. TCP and SCTP connections are also synced on a change to a state worth keeping.",
	})
	RefreshPeriodSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_refresh_period", Default: []int64{10}, Kernel: "0", Min: 0, Max: MaxRefreshPeriod,
		Meaning: "Seconds a synced entry whose state did not change waits before it is synced again (at most half " +
			"its timeout, at least 10 s); 0: no time check, every use of a template is synced. xvs's default is 10 " +
			"(the kernel's 0 multicasts one entry per datagram under one-packet scheduling); with a refresh period " +
			"the master also re-sends idle live templates once per period, so a backup started late learns them.",
	})
	RetriesSwitch = sysctl.Register(sysctl.Switch{
		Name: "sync_retries", Default: []int64{1}, Kernel: "0", Min: 0, Max: MaxRetries,
		Meaning: "With sync_refresh_period: re-send an entry up to this many times, sync_refresh_period/8 apart, " +
			"against lost messages. xvs's default is 1 (the kernel's 0).",
	})
)

// fields maps each switch to its field(s) of Switches.
var fields = []struct {
	id  sysctl.ID
	get func(*Switches) []int64
	set func(*Switches, []int64)
}{
	{VersionSwitch, func(s *Switches) []int64 { return []int64{int64(s.Version)} }, func(s *Switches, v []int64) { s.Version = int(v[0]) }},
	{PortsSwitch, func(s *Switches) []int64 { return []int64{int64(s.Ports)} }, func(s *Switches, v []int64) { s.Ports = int(v[0]) }},
	{PersistModeSwitch, func(s *Switches) []int64 { return []int64{int64(s.PersistMode)} }, func(s *Switches, v []int64) { s.PersistMode = int(v[0]) }},
	{QueueMaxSwitch, func(s *Switches) []int64 { return []int64{int64(s.QueueMax)} }, func(s *Switches, v []int64) { s.QueueMax = int(v[0]) }},
	{SockSizeSwitch, func(s *Switches) []int64 { return []int64{int64(s.SockSize)} }, func(s *Switches, v []int64) { s.SockSize = int(v[0]) }},
	{ThresholdSwitch, func(s *Switches) []int64 { return []int64{int64(s.Threshold), int64(s.Period)} }, func(s *Switches, v []int64) { s.Threshold, s.Period = int(v[0]), int(v[1]) }},
	{RefreshPeriodSwitch, func(s *Switches) []int64 { return []int64{int64(s.RefreshPeriod)} }, func(s *Switches, v []int64) { s.RefreshPeriod = int(v[0]) }},
	{RetriesSwitch, func(s *Switches) []int64 { return []int64{int64(s.Retries)} }, func(s *Switches, v []int64) { s.Retries = int(v[0]) }},
}

// FromValues reads the switches from a set of IPVS switch values (a
// configuration snapshot's Sysctls).
func FromValues(v sysctl.Values) Switches {
	var s Switches
	for _, f := range fields {
		f.set(&s, v.Vector(f.id))
	}
	return s
}

// Values returns v with the switches set to s; it fails as Validate does.
func (s Switches) Values(v sysctl.Values) (sysctl.Values, error) {
	for _, f := range fields {
		var err error
		if v, err = v.With(f.id, f.get(&s)); err != nil {
			return v, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return v, nil
}

// Validate checks every switch against its range in the registry.
func (s Switches) Validate() error {
	for _, f := range fields {
		if err := f.id.Check(f.get(&s)); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

// String renders the switches as sysctl settings, for logs.
func (s Switches) String() string {
	var b []byte
	for i, f := range fields {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, f.id.Name()...)
		b = append(b, '=')
		for j, x := range f.get(&s) {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, x, 10)
		}
	}
	return string(b)
}
