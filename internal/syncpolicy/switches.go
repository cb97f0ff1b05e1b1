package syncpolicy

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Switches are the IPVS synchronisation sysctls (/proc/sys/net/ipv4/vs/),
// with the kernel's names, units and meaning.
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
// which waits until its expiry has moved by 10 s). One retry, 1.25 s later at the earliest, covers a lost first
// message, which would otherwise leave the backup without the call for the
// next 10 s.
func Defaults() Switches {
	s := KernelDefaults()
	s.RefreshPeriod = 10
	s.Retries = 1
	return s
}

// ErrInvalid reports a switch value out of its range; the kernel answers
// such a write with EINVAL.
var ErrInvalid = errors.New("invalid argument")

// Validate checks every switch against its range.
func (s Switches) Validate() error {
	for _, sw := range Table {
		if err := sw.check(&s); err != nil {
			return err
		}
	}
	return nil
}

// Switch describes one sysctl: plain data for a registry of switches.
type Switch struct {
	Name    string // under net/ipv4/vs/, as sysctl(8) names it
	Kernel  string // the kernel's default, as sysctl prints it
	Default string // xvs's default
	Range   string // accepted values
	Meaning string
	get     func(*Switches) string
	set     func(*Switches, string) error
	check   func(*Switches) error
}

// Table lists the synchronisation switches in the kernel's order.
var Table = []Switch{
	{Name: "sync_version", Kernel: "1", Default: "1", Range: "0..1",
		Meaning: "protocol version the master sends: 1 (IPv6, timeouts, fwmarks, pe data) or 0 (the original IPv4-only format)",
		get:     func(s *Switches) string { return strconv.Itoa(s.Version) },
		set:     intSetter(func(s *Switches) *int { return &s.Version }),
		check:   func(s *Switches) error { return inRange("sync_version", s.Version, 0, 1) }},
	{Name: "sync_ports", Kernel: "1", Default: "1", Range: "power of 2, 1..64",
		Meaning: "UDP ports (and threads) master and backup use, from the multicast port up",
		get:     func(s *Switches) string { return strconv.Itoa(s.Ports) },
		set:     intSetter(func(s *Switches) *int { return &s.Ports }),
		check: func(s *Switches) error {
			if s.Ports < 1 || s.Ports > MaxPorts || bits.OnesCount(uint(s.Ports)) != 1 {
				return fmt.Errorf("sync_ports %d: must be a power of 2 from 1 to %d: %w", s.Ports, MaxPorts, ErrInvalid)
			}
			return nil
		}},
	{Name: "sync_persist_mode", Kernel: "0", Default: "0", Range: "0..1",
		Meaning: "1: for persistent services sync only the templates, not their connections",
		get:     func(s *Switches) string { return strconv.Itoa(s.PersistMode) },
		set:     intSetter(func(s *Switches) *int { return &s.PersistMode }),
		check:   func(s *Switches) error { return inRange("sync_persist_mode", s.PersistMode, 0, 1) }},
	{Name: "sync_qlen_max", Kernel: "free pages/32", Default: strconv.Itoa(DefaultQueueMax), Range: "1..",
		Meaning: "hard limit of sync messages waiting to be sent; more are dropped",
		get:     func(s *Switches) string { return strconv.Itoa(s.QueueMax) },
		set:     intSetter(func(s *Switches) *int { return &s.QueueMax }),
		check:   func(s *Switches) error { return inRange("sync_qlen_max", s.QueueMax, 1, 1<<30) }},
	{Name: "sync_sock_size", Kernel: "0", Default: "0", Range: "0..",
		Meaning: "SO_SNDBUF (master) and SO_RCVBUF (backup) of the sync sockets, bytes; 0 keeps the system default",
		get:     func(s *Switches) string { return strconv.Itoa(s.SockSize) },
		set:     intSetter(func(s *Switches) *int { return &s.SockSize }),
		check:   func(s *Switches) error { return inRange("sync_sock_size", s.SockSize, 0, 1<<30) }},
	{Name: "sync_threshold", Kernel: "3\t50", Default: "3\t50", Range: "threshold period: 0 <= threshold < period, or period 0",
		Meaning: "sync a connection when its incoming packets modulo period equal threshold (templates skip this check); period 0: once, at threshold",
		get:     func(s *Switches) string { return strconv.Itoa(s.Threshold) + "\t" + strconv.Itoa(s.Period) },
		set: func(s *Switches, v string) error {
			f := strings.Fields(v)
			if len(f) != 2 {
				return fmt.Errorf("sync_threshold %q: want two numbers: %w", v, ErrInvalid)
			}
			t, err1 := strconv.Atoi(f[0])
			p, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil {
				return fmt.Errorf("sync_threshold %q: %w", v, ErrInvalid)
			}
			s.Threshold, s.Period = t, p
			return nil
		},
		check: func(s *Switches) error {
			if s.Threshold < 0 || s.Period < 0 || (s.Period != 0 && s.Threshold >= s.Period) {
				return fmt.Errorf("sync_threshold %d %d: need 0 <= threshold < period, or period 0: %w", s.Threshold, s.Period, ErrInvalid)
			}
			return nil
		}},
	{Name: "sync_refresh_period", Kernel: "0", Default: "10", Range: "0..2147483 (seconds)",
		Meaning: "seconds a synced entry whose state did not change waits before it is synced again (at most half its timeout, at least 10 s); 0: no time check",
		get:     func(s *Switches) string { return strconv.Itoa(s.RefreshPeriod) },
		set:     intSetter(func(s *Switches) *int { return &s.RefreshPeriod }),
		check:   func(s *Switches) error { return inRange("sync_refresh_period", s.RefreshPeriod, 0, MaxRefreshPeriod) }},
	{Name: "sync_retries", Kernel: "0", Default: "1", Range: "0..3",
		Meaning: "with sync_refresh_period, re-send up to this many times, sync_refresh_period/8 apart",
		get:     func(s *Switches) string { return strconv.Itoa(s.Retries) },
		set:     intSetter(func(s *Switches) *int { return &s.Retries }),
		check:   func(s *Switches) error { return inRange("sync_retries", s.Retries, 0, MaxRetries) }},
}

// Get returns the value of the named switch as sysctl prints it, and
// false for a name that is not a sync switch.
func (s *Switches) Get(name string) (string, bool) {
	for _, sw := range Table {
		if sw.Name == name {
			return sw.get(s), true
		}
	}
	return "", false
}

// Set parses and sets the named switch. It changes nothing and returns an
// error wrapping ErrInvalid when the value is malformed or out of range.
func (s *Switches) Set(name, value string) error {
	for _, sw := range Table {
		if sw.Name == name {
			n := *s
			if err := sw.set(&n, value); err != nil {
				return err
			}
			if err := sw.check(&n); err != nil {
				return err
			}
			*s = n
			return nil
		}
	}
	return fmt.Errorf("%s: no such sync switch: %w", name, ErrInvalid)
}

func intSetter(field func(*Switches) *int) func(*Switches, string) error {
	return func(s *Switches, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%q: %w", v, ErrInvalid)
		}
		*field(s) = n
		return nil
	}
}

func inRange(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d: out of range %d..%d: %w", name, v, lo, hi, ErrInvalid)
	}
	return nil
}
