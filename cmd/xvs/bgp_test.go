package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/bgp"
)

// parseBGP runs xvs run's BGP flags through bgpConfig as main's app does.
func parseBGP(t *testing.T, args ...string) (bgp.Config, error) {
	t.Helper()
	var cfg bgp.Config
	var cfgErr error
	app := &cli.App{Name: "xvs", DisableSliceFlagSeparator: true, Commands: []*cli.Command{{
		Name: "run", Flags: bgpFlags(),
		Action: func(c *cli.Context) error { cfg, cfgErr = bgpConfig(c); return nil },
	}}}
	if err := app.Run(append([]string{"xvs", "run"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg, cfgErr
}

// BGP is off unless configured; a --bgp-config file and flags combine
// (flags override scalars and add to lists); an incomplete configuration
// is refused before anything starts.
func TestBGPFlags(t *testing.T) {
	cfg, err := parseBGP(t)
	if err != nil || cfg.Enabled() {
		t.Fatalf("no BGP flags: enabled %v, %v", cfg.Enabled(), err)
	}
	file := filepath.Join(t.TempDir(), "bgp.conf")
	os.WriteFile(file, []byte("asn 65001\nrouter-id 10.0.1.11\npeer 10.0.1.1:65000\nhold-time 9\npassword s3cret\n"), 0o600)
	cfg, err = parseBGP(t, "--bgp-config", file, "--bgp-hold-time", "3",
		"--bgp-peer", "[fd00:1::1]:65000,port=1179,hold-time=6", "--bgp-community", "65001:100",
		"--bgp-med", "192.0.2.1=20", "--bgp-next-hop", "fd00:1::11", "--bgp-drain-period", "2s")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Enabled() || cfg.ASN != 65001 || cfg.HoldTime != 3*time.Second || len(cfg.Peers) != 2 ||
		cfg.Peers[1].Port != 1179 || cfg.Peers[1].HoldTime != 6*time.Second || cfg.Password != "s3cret" ||
		cfg.NextHop6.String() != "fd00:1::11" || cfg.DrainPeriod != 2*time.Second {
		t.Fatalf("file and flags: %+v", cfg)
	}
	if at := cfg.AttrsFor(cfg.Peers[0].Addr); at.HasMED || len(at.Communities) != 1 {
		t.Errorf("attributes of another VIP: %+v", at)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bgp-asn", "65001", "--bgp-peer", "10.0.1.1:65000"}, "router id is missing"},
		{[]string{"--bgp-asn", "65001", "--bgp-router-id", "10.0.1.11"}, "no peer"},
		{[]string{"--bgp-peer", "fd00::1:65000"}, "brackets"},
		{[]string{"--bgp-asn", "65001", "--bgp-router-id", "10.0.1.11", "--bgp-peer", "10.0.1.1:65000", "--bgp-hold-time", "1"}, "--bgp-hold-time"},
	} {
		if _, err := parseBGP(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
