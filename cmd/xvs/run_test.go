package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{"": nil, "3": {3}, "2,3": {2, 3}, "0-3,8": {0, 1, 2, 3, 8}, "5-5": {5}} {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "1,", "3-1", "-1", "1-", "1024", "0-2000"} {
		if got, err := parseCPUList(in); err == nil {
			t.Errorf("%q: accepted as %v", in, got)
		}
	}
}

// TestRunRefusesBadTuning: the busy-poll and CPU flags are checked before
// anything is opened, with exit status 2 and the flag's name.
func TestRunRefusesBadTuning(t *testing.T) {
	for _, args := range [][]string{
		{"--busy-poll", "-1us"},
		{"--busy-poll", "50us", "--busy-poll-budget", "70000"},
		{"--busy-poll-budget", "8"},
		{"--cpus", "1-"},
	} {
		var b bytes.Buffer
		app := &cli.App{Name: "xvs", Commands: []*cli.Command{runCommand()}, Writer: &b, ErrWriter: &b, ExitErrHandler: func(*cli.Context, error) {}}
		err := app.Run(append([]string{"xvs", "run", "--iface", "xvs-no-such-if", "--control", "", "--metrics", ""}, args...))
		ec, ok := err.(cli.ExitCoder)
		if !ok || ec.ExitCode() != 2 || !strings.Contains(err.Error(), args[len(args)-2]) {
			t.Errorf("%v: %v", args, err)
		}
	}
	help := runHelp(t)
	for _, f := range []string{"--busy-poll ", "--busy-poll-budget", "--cpus"} {
		if !strings.Contains(help, f) {
			t.Errorf("xvs run --help has no %s", f)
		}
	}
}
