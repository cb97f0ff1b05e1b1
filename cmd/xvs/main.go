// Command xvs is the xvs load balancer: it serves virtual services on a network
// interface (xvs run) and replays captures through the same pipeline (xvs replay).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "xvs: no commands yet")
	os.Exit(2)
}
