// Command xvsadm administers a running xvs daemon with ipvsadm's syntax.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "xvsadm: no commands yet")
	os.Exit(2)
}
