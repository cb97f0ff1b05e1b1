package main

import (
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/daemon"
	"github.com/xvs-lb/xvs/internal/metrics"
)

// startServices starts the control socket (xvsadm) and the metrics listener
// around a running daemon and returns the function that stops them.
func startServices(c *cli.Context, d *daemon.Daemon, log *slog.Logger) (func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if path := c.String("control"); path != "" {
		s := control.NewServer(d, control.Options{Version: version, Log: log})
		if err := s.Start(path); err != nil {
			return nil, err
		}
		stops = append(stops, func() { s.Close() })
		log.Info("control socket", "path", path)
	}
	if addr := c.String("metrics"); addr != "" {
		m, err := metrics.Serve(addr, d, metrics.Options{Pprof: c.Bool("pprof"), AllowPublic: c.Bool("metrics-public")})
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, func() { m.Close() })
		log.Info("metrics", "addr", addr, "pprof", c.Bool("pprof"))
	}
	return stop, nil
}
