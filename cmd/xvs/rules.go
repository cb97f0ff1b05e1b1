package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/keepalived"
	"github.com/xvs-lb/xvs/pe"
)

func rulesCommand() *cli.Command {
	return &cli.Command{
		Name:  "rules",
		Usage: "print what xvs understands of a configuration as xvsadm -Sn rules",
		Description: "With --from-keepalived FILE, reads a keepalived.conf as keepalived 2.2 does and prints its\n" +
			"virtual servers as `xvsadm -Sn` would list them once loaded (ipvsadm rules plus the health checks\n" +
			"in xvsadm's syntax). Warnings go to stderr with file:line; a configuration xvs refuses prints its\n" +
			"errors and exits with status 1.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "from-keepalived", Usage: "keepalived.conf to read", Required: true},
			&cli.StringFlag{Name: "config-id", Usage: "keepalived's -i: which '@id' conditional lines apply (default: the host name)"},
		},
		Action: rulesAction,
	}
}

func rulesAction(c *cli.Context) error {
	l, err := keepalived.Load(c.String("from-keepalived"), keepalived.Options{ConfigID: c.String("config-id")})
	if err == nil {
		var cfg *ipvs.Config
		if cfg, err = ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists}); err == nil {
			err = l.Build(cfg)
		}
		if err == nil {
			for _, w := range l.Warnings {
				fmt.Fprintln(os.Stderr, w)
			}
			_, err = os.Stdout.Write(control.SaveRules(cfg.Snapshot(), ipvsadm.Format{Numeric: true}, ipvsadm.Names{}))
			return err
		}
	}
	var ke *keepalived.Error
	if errors.As(err, &ke) {
		return cli.Exit(ke.Error(), 1)
	}
	return cli.Exit(err.Error(), 1)
}
