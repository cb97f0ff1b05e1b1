// Package sysctl is the registry of the IPVS switches xvs honours: the
// kernel's net.ipv4.vs.NAME sysctls, each with its name, the kernel's
// default, its range and its meaning, and Values, the immutable set of their
// values that every configuration snapshot carries.
//
// A switch is registered once, by the package that honours it, with one
// statement at package level:
//
//	var ExpireNodestConn = sysctl.Register(sysctl.Switch{
//		Name: "expire_nodest_conn", Default: []int64{0}, Min: 0, Max: 1,
//		Meaning: "…",
//	})
//
// Everything else follows from the entry: xvs run --sysctl and xvsadm
// --sysctl set it by name (checked against its range), xvsadm --sysctl lists
// it with its value, -S saves it when it is not the default, metrics export
// it, and the data plane reads it from its snapshot with Values.Get, which
// takes no lock and allocates nothing. A name the kernel has and xvs does not
// honour is refused as such (ErrUnsupported), any other as ErrUnknown.
//
// Values are changed only through the configuration (ipvs.Config.SetSysctl),
// so that a change goes through the same validation and atomic publication
// as every other.
package sysctl

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Prefix is the kernel's name space of the IPVS sysctls.
const Prefix = "net.ipv4.vs."

// Errors. Test with errors.Is.
var (
	// ErrUnsupported: the kernel has this sysctl, xvs does not honour it.
	ErrUnsupported = errors.New("not supported by xvs")
	// ErrUnknown: no IPVS sysctl has this name.
	ErrUnknown = errors.New("no such IPVS sysctl")
	// ErrValue: a value that is not a number, out of the switch's range, or
	// the wrong count of numbers.
	ErrValue = errors.New("invalid value")
)

// Switch describes one sysctl xvs honours.
type Switch struct {
	// Name is the kernel's name under net.ipv4.vs.
	Name string
	// Default is xvs's default: the kernel's, unless Kernel says
	// otherwise. Its length is the number of values the switch holds: one
	// for all but vectors such as sync_threshold ("3 50").
	Default []int64
	// Kernel is the kernel's default as sysctl(8) prints it, when it is
	// not Default ("" when they are the same).
	Kernel string
	// Min and Max bound every value.
	Min, Max int64
	// Check, if set, enforces constraints between the values of a vector.
	Check func(v []int64) error
	// Meaning is the kernel's documentation of the switch
	// (Documentation/networking/ipvs-sysctl.rst), with how xvs honours it.
	Meaning string
}

// ID identifies a registered switch.
type ID int

var registry struct {
	sync.Mutex
	switches []Switch
	byName   map[string]ID
}

// Register adds a switch to the registry and returns its ID. Call it from a
// package-level variable declaration; it panics on a duplicate name or an
// invalid entry (a programming error).
func Register(s Switch) ID {
	registry.Lock()
	defer registry.Unlock()
	_, dup := registry.byName[s.Name]
	switch {
	case s.Name == "" || strings.ContainsAny(s.Name, "=./ \t,"):
		panic(fmt.Sprintf("sysctl: invalid name %q", s.Name))
	case len(s.Default) == 0 || s.Min > s.Max:
		panic(fmt.Sprintf("sysctl: %s: no default or an empty range", s.Name))
	case dup:
		panic(fmt.Sprintf("sysctl: %s registered twice", s.Name))
	}
	if err := s.validate(s.Default); err != nil {
		panic(fmt.Sprintf("sysctl: %s: default: %v", s.Name, err))
	}
	if registry.byName == nil {
		registry.byName = map[string]ID{}
	}
	s.Default = slices.Clone(s.Default)
	id := ID(len(registry.switches))
	registry.switches = append(registry.switches, s)
	registry.byName[s.Name] = id
	return id
}

// Switch returns the switch id names.
func (id ID) Switch() Switch {
	registry.Lock()
	defer registry.Unlock()
	return registry.switches[id]
}

// Name returns the switch's name under net.ipv4.vs.
func (id ID) Name() string { return id.Switch().Name }

// All returns every registered switch's ID, sorted by name.
func All() []ID {
	registry.Lock()
	defer registry.Unlock()
	ids := make([]ID, len(registry.switches))
	for i := range ids {
		ids[i] = ID(i)
	}
	slices.SortFunc(ids, func(a, b ID) int { return strings.Compare(registry.switches[a].Name, registry.switches[b].Name) })
	return ids
}

// Lookup finds a switch by its name, bare (expire_nodest_conn) or as
// sysctl(8) writes it (net.ipv4.vs.expire_nodest_conn, or with slashes).
func Lookup(name string) (ID, error) {
	bare := strings.TrimPrefix(strings.ReplaceAll(name, "/", "."), Prefix)
	registry.Lock()
	id, ok := registry.byName[bare]
	registry.Unlock()
	switch {
	case ok:
		return id, nil
	case slices.Contains(kernelNames, bare):
		return 0, fmt.Errorf("sysctl %s%s is %w", Prefix, bare, ErrUnsupported)
	}
	return 0, fmt.Errorf("%w: %s%s", ErrUnknown, Prefix, bare)
}

// kernelNames are the IPVS sysctls of current kernels
// (ip_vs_control_net_init_sysctl, and the lblc/lblcr schedulers'), so that
// one xvs does not honour is told apart from a typing error.
var kernelNames = []string{
	"am_droprate", "amemthresh", "backup_only", "cache_bypass", "conn_lfactor", "conn_reuse_mode",
	"conntrack", "debug_level", "drop_entry", "drop_packet", "est_cpulist", "est_nice",
	"expire_nodest_conn", "expire_quiescent_template", "ignore_tunneled", "lblc_expiration",
	"lblcr_expiration", "nat_icmp_send", "pmtu_disc", "run_estimation", "schedule_icmp", "secure_tcp",
	"sloppy_sctp", "sloppy_tcp", "snat_reroute", "svc_lfactor", "sync_persist_mode", "sync_ports",
	"sync_qlen_max", "sync_refresh_period", "sync_retries", "sync_sock_size", "sync_threshold",
	"sync_version",
}

// Check checks a value of the switch against its count, range and Check,
// as Parse and Values.With do.
func (id ID) Check(v []int64) error {
	s := id.Switch()
	return s.validate(v)
}

// validate checks a value against the switch's count, range and Check.
func (s *Switch) validate(v []int64) error {
	if len(v) != len(s.Default) {
		return fmt.Errorf("%s wants %d value(s), got %d: %w", s.Name, len(s.Default), len(v), ErrValue)
	}
	for _, x := range v {
		if x < s.Min || x > s.Max {
			return fmt.Errorf("%s %d out of range %d..%d: %w", s.Name, x, s.Min, s.Max, ErrValue)
		}
	}
	if s.Check != nil {
		if err := s.Check(v); err != nil {
			return fmt.Errorf("%s %v: %w (%w)", s.Name, v, ErrValue, err)
		}
	}
	return nil
}

// Parse parses a setting, NAME=VALUE as sysctl -w takes it; a vector's
// values are separated by spaces, tabs or commas ("sync_threshold=3,50").
// The value is checked against the switch's count and range.
func Parse(setting string) (ID, []int64, error) {
	name, val, ok := strings.Cut(setting, "=")
	if !ok {
		return 0, nil, fmt.Errorf("%q: want NAME=VALUE: %w", setting, ErrValue)
	}
	id, err := Lookup(strings.TrimSpace(name))
	if err != nil {
		return 0, nil, err
	}
	s := id.Switch()
	var v []int64
	for f := range strings.FieldsFuncSeq(val, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %q is not a number: %w", s.Name, f, ErrValue)
		}
		v = append(v, n)
	}
	if err := s.validate(v); err != nil {
		return 0, nil, err
	}
	return id, v, nil
}

// Values is an immutable set of the switches' values; the zero Values holds
// every default. Copy it freely.
type Values struct {
	v [][]int64 // by ID; nil or missing: the default
}

// Get returns the (first) value of a switch. It takes no lock and
// allocates nothing: the data plane may call it per packet.
func (v Values) Get(id ID) int64 {
	if int(id) < len(v.v) && v.v[id] != nil {
		return v.v[id][0]
	}
	return defaultOf(id)[0]
}

// defaultOf reads the registry without its lock: the registry only grows,
// at package initialisation, before any Values exists.
func defaultOf(id ID) []int64 { return registry.switches[id].Default }

// Vector returns every value of a switch. The slice is shared: do not
// modify it.
func (v Values) Vector(id ID) []int64 {
	if int(id) < len(v.v) && v.v[id] != nil {
		return v.v[id]
	}
	return defaultOf(id)
}

// With returns v with a switch set to val (checked against its count and
// range); v is unchanged.
func (v Values) With(id ID, val []int64) (Values, error) {
	s := id.Switch()
	if err := s.validate(val); err != nil {
		return v, err
	}
	n := make([][]int64, max(len(v.v), int(id)+1))
	copy(n, v.v)
	if slices.Equal(val, s.Default) {
		n[id] = nil
	} else {
		n[id] = slices.Clone(val)
	}
	return Values{v: n}, nil
}

// IsDefault reports whether a switch holds its default.
func (v Values) IsDefault(id ID) bool { return slices.Equal(v.Vector(id), defaultOf(id)) }

// Format renders a switch's value as the kernel prints it: numbers
// separated by tabs.
func (v Values) Format(id ID) string {
	var b strings.Builder
	for i, x := range v.Vector(id) {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(strconv.FormatInt(x, 10))
	}
	return b.String()
}

// Setting renders a switch as NAME=VALUE, which Parse reads back (a
// vector's values separated by commas, so that it stays one argument).
func (v Values) Setting(id ID) string {
	return id.Name() + "=" + strings.ReplaceAll(v.Format(id), "\t", ",")
}
