// Command xvslab runs xvs in a network-namespace lab built on this machine:
// `xvslab demo` is what make demo runs as root.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/demo"
)

func main() {
	self, _ := os.Executable()
	bin := filepath.Dir(self)
	app := &cli.App{
		Name:            "xvslab",
		Usage:           "run xvs in a network-namespace lab on this machine (root)",
		HideHelpCommand: true,
		Commands: []*cli.Command{{
			Name:  "demo",
			Usage: "a SIP farm in namespaces: xvs on AF_XDP, SIPp calls from one source port, xvsadm listings",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "xvs", Value: filepath.Join(bin, "xvs"), Usage: "the xvs binary"},
				&cli.StringFlag{Name: "xvsadm", Value: filepath.Join(bin, "xvsadm"), Usage: "the xvsadm binary"},
				&cli.StringFlag{Name: "mode", Value: "auto", Usage: "xvs run --mode"},
				&cli.IntFlag{Name: "calls", Value: 120, Usage: "calls to place"},
				&cli.BoolFlag{Name: "check", Usage: "only report whether the live demo can run here"},
				&cli.BoolFlag{Name: "ha", Usage: "the failover demo: two directors with keepalived and the sync daemons, the active one's xvs killed mid-calls"},
			},
			Action: func(c *cli.Context) error {
				check, run := demo.Check, func(ctx context.Context) error {
					return demo.Run(ctx, demo.Options{XVS: c.String("xvs"), XVSAdm: c.String("xvsadm"), Mode: c.String("mode"),
						Calls: c.Int("calls"), Out: os.Stdout})
				}
				if c.Bool("ha") {
					check, run = demo.CheckHA, func(ctx context.Context) error {
						mode := c.String("mode")
						if mode == "auto" {
							mode = "" // ha: AF_XDP, generic on the lab's veths
						}
						return demo.RunHA(ctx, demo.HAOptions{XVS: c.String("xvs"), XVSAdm: c.String("xvsadm"), Mode: mode,
							Calls: c.Int("calls"), Out: os.Stdout})
					}
				}
				if c.Bool("check") {
					if err := check(); err != nil {
						return cli.Exit(err.Error(), 3)
					}
					return nil
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				err := run(ctx)
				if errors.Is(err, demo.ErrCannotRun) {
					return cli.Exit(err.Error(), 3)
				}
				if errors.Is(err, demo.ErrInterrupted) {
					return cli.Exit("xvslab demo: interrupted; the lab was torn down", 130)
				}
				return err
			},
		}, benchCommand(bin), benchProxyCommand()},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "xvslab: %v\n", err)
		os.Exit(1)
	}
}
