// Command xvs is the xvs load balancer. This main only parses flags and wires
// packages together; the work is in internal/replay, internal/pipeline and
// friends.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	// Data-plane backends register themselves with package dataplane.
	_ "github.com/xvs-lb/xvs/afxdp"
	_ "github.com/xvs-lb/xvs/internal/rawsock"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	app := &cli.App{
		Name:    "xvs",
		Usage:   "the IPVS virtual-server model in user space, with SIP Call-ID persistence",
		Version: version,
		Commands: []*cli.Command{
			runCommand(),
			replayCommand(),
			rulesCommand(),
		},
		HideHelpCommand: true,
		// --bgp-peer ADDR:ASN,port=P,… carries commas: repeat the flag
		// instead of separating values with them.
		DisableSliceFlagSeparator: true,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "xvs: %v\n", err)
		os.Exit(1)
	}
}
