// Package rules applies ipvsadm commands (parsed by internal/ipvsadm) to the
// virtual-server configuration (internal/ipvs). It is how rules files in
// ipvsadm -S format are loaded, and how xvsadm's commands reach the model.
package rules

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/sysctl"
)

// ErrNotConfig reports a command that does not change the configuration
// (list, save, help…) where only configuration commands are allowed.
var ErrNotConfig = errors.New("not a configuration command")

// ServiceConfig converts an ipvsadm service specification into the model's.
func ServiceConfig(s ipvsadm.Service) ipvs.ServiceConfig {
	c := ipvs.ServiceConfig{
		Protocol:   s.Protocol,
		Scheduler:  s.Scheduler,
		SchedFlags: s.SchedFlags,
		Persistent: s.Persistent,
		Timeout:    s.Timeout,
		PE:         s.PE,
		PEStrict:   s.PEStrict,
		OnePacket:  s.OnePacket,
	}
	c.Addr = netip.AddrPortFrom(s.Addr, s.Port)
	if s.Addr.Is4() {
		if s.Netmask != 0xffffffff { // 0 is -M 0.0.0.0: one template for all clients

			c.Netmask = ipvs.Mask4(s.MaskAddr())
		}
	} else if s.Netmask != 0 && s.Netmask != 128 {
		c.Netmask = ipvs.Mask6(int(s.Netmask))
	}
	return c
}

// Key returns the model's key of an ipvsadm service specification.
func Key(s ipvsadm.Service) ipvs.ServiceKey {
	return ipvs.ServiceKey{Protocol: s.Protocol, Addr: s.Addr, Port: s.Port}
}

// DestConfig converts an ipvsadm real-server specification.
func DestConfig(d ipvsadm.Dest) ipvs.DestConfig {
	return ipvs.DestConfig{Addr: d.Addr, Fwd: d.Forward, Weight: int(d.Weight), Upper: d.UThreshold, Lower: d.LThreshold, Tunnel: d.Tunnel}
}

// HealthCheck converts an xvsadm --health-check specification into the
// model's, filling the defaults (a timeout left out is at most the
// interval). It returns nil for --check none.
func HealthCheck(c ipvsadm.Check) (*ipvs.HealthCheck, error) {
	t, ok := ipvs.ParseCheckType(c.Type)
	if !ok {
		return nil, fmt.Errorf("check type %q: %w", c.Type, ipvs.ErrInvalid)
	}
	if t == ipvs.CheckNone {
		return nil, nil
	}
	h := ipvs.DefaultHealthCheck(t)
	if c.Interval != 0 {
		h.Interval = c.Interval
	}
	if c.Timeout != 0 {
		h.Timeout = c.Timeout
	} else {
		h.Timeout = min(h.Timeout, h.Interval)
	}
	if c.Fail != 0 {
		h.Fail = c.Fail
	}
	if c.Rise != 0 {
		h.Rise = c.Rise
	}
	h.Port = c.Port
	if c.Codes != "" {
		rs, ok := ipvsadm.ParseCodes(c.Codes)
		if !ok {
			return nil, fmt.Errorf("codes %q: %w", c.Codes, ipvs.ErrInvalid)
		}
		for _, r := range rs {
			h.Codes = append(h.Codes, ipvs.CodeRange{Lo: r[0], Hi: r[1]})
		}
	}
	if c.OnFail == "keep" {
		h.OnFail = ipvs.PolicyKeep
	}
	h.RetryInterval, h.StartDown = c.RetryInterval, c.StartDown
	if c.Script != "" {
		argv, ok := ipvsadm.SplitCommand(c.Script)
		if !ok || len(argv) == 0 {
			return nil, fmt.Errorf("script %q: %w", c.Script, ipvs.ErrInvalid)
		}
		h.Script = argv
	}
	h.ScriptUser, h.Dynamic = c.ScriptUser, c.Dynamic
	h.URL, h.Digest, h.VirtualHost = c.URL, c.Digest, c.VirtualHost
	if (t == ipvs.CheckHTTP || t == ipvs.CheckHTTPS) && h.URL == "" {
		h.URL = "/"
	}
	return &h, h.Validate()
}

// Apply carries out one configuration command.
func Apply(cfg *ipvs.Config, cmd ipvsadm.Command) error {
	switch cmd.Kind {
	case ipvsadm.AddService:
		return cfg.AddService(ServiceConfig(cmd.Service))
	case ipvsadm.EditService:
		return cfg.EditService(ServiceConfig(cmd.Service))
	case ipvsadm.DeleteService:
		return cfg.DelService(Key(cmd.Service))
	case ipvsadm.Clear:
		cfg.Clear()
		return nil
	case ipvsadm.AddServer:
		return cfg.AddDest(Key(cmd.Service), DestConfig(cmd.Dest))
	case ipvsadm.EditServer:
		return cfg.EditDest(Key(cmd.Service), DestConfig(cmd.Dest))
	case ipvsadm.DeleteServer:
		return cfg.DelDest(Key(cmd.Service), cmd.Dest.Addr)
	case ipvsadm.SetTimeout:
		return cfg.SetTimeouts(ipvs.Timeouts{TCP: cmd.Timeouts.TCP, TCPFin: cmd.Timeouts.TCPFin, UDP: cmd.Timeouts.UDP})
	case ipvsadm.Zero:
		if cmd.Options.Has(ipvsadm.OptService) {
			return cfg.ZeroService(Key(cmd.Service))
		}
		cfg.ZeroAll()
		return nil
	case ipvsadm.HealthCheckCmd:
		h, err := HealthCheck(cmd.Check)
		if err != nil {
			return fmt.Errorf("%v: %w", Key(cmd.Service), err)
		}
		if cmd.Options.Has(ipvsadm.OptServer) {
			return cfg.SetDestHealthCheck(Key(cmd.Service), cmd.Dest.Addr, h)
		}
		return cfg.SetHealthCheck(Key(cmd.Service), h)
	case ipvsadm.Drain:
		restore := -1
		if cmd.Options.Has(ipvsadm.OptWeight) {
			restore = int(cmd.Dest.Weight)
		}
		return cfg.Drain(Key(cmd.Service), cmd.Dest.Addr, restore)
	case ipvsadm.Undrain:
		return cfg.Undrain(Key(cmd.Service), cmd.Dest.Addr)
	case ipvsadm.SysctlCmd:
		if cmd.Mutates() {
			return SetSysctl(cfg, cmd.Sysctl)
		}
	}
	return fmt.Errorf("%s: %w", cmd.Kind, ErrNotConfig)
}

// SetSysctl sets one IPVS sysctl from a NAME=VALUE setting (xvsadm --sysctl,
// xvs run --sysctl, a --sysctl line of a rules file).
func SetSysctl(cfg *ipvs.Config, setting string) error {
	id, v, err := sysctl.Parse(setting)
	if err != nil {
		return err
	}
	return cfg.SetSysctl(id, v)
}

// Read parses a rules file (ipvsadm -S format, one command per line, with #
// comments; read by ipvsadm.ReadRules, the reader xvsadm -R uses too, with
// its limit) and applies every command in order. It stops at the first
// error, which names the line; commands before it stay applied, so callers
// that need all-or-nothing apply to a candidate (ipvs.Config.Clone).
func Read(cfg *ipvs.Config, r io.Reader, name string) error {
	rs, err := ipvsadm.Parser{}.ReadRules(r, name)
	if err != nil {
		return err
	}
	for _, c := range rs {
		if !c.Mutates() {
			return fmt.Errorf("%s:%d: %s: %w", name, c.Line, c.Kind, ErrNotConfig)
		}
	}
	for _, c := range rs {
		if err := Apply(cfg, c.Command); err != nil {
			return fmt.Errorf("%s:%d: %w", name, c.Line, err)
		}
	}
	return nil
}

// Load reads a rules file from path into cfg (see Read).
func Load(cfg *ipvs.Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return Read(cfg, f, path)
}
