package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/bgp"
	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/daemon"
	"github.com/xvs-lb/xvs/internal/metrics"
)

// startServices starts the control socket (xvsadm) and the metrics listener
// around a running daemon and returns the function that stops them.
func startServices(c *cli.Context, d *daemon.Daemon, ann *bgp.Announcer, log *slog.Logger) (func(), error) {
	var dir control.Director
	if ann != nil {
		dir = ann
	}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if path := c.String("control"); path != "" {
		s := control.NewServer(d, control.Options{Version: version, Log: log, Director: dir})
		if err := s.Start(path); err != nil {
			return nil, err
		}
		stops = append(stops, func() { s.Close() })
		log.Info("control socket", "path", path)
	}
	if addr := c.String("metrics"); addr != "" {
		m, err := metrics.Serve(addr, d, metrics.Options{Pprof: c.Bool("pprof"), AllowPublic: c.Bool("metrics-public"), Director: dir})
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, func() { m.Close() })
		log.Info("metrics", "addr", addr, "pprof", c.Bool("pprof"))
	}
	return stop, nil
}
