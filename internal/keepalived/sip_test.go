package keepalived

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/capture"
	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/replay"
	"github.com/xvs-lb/xvs/internal/rules"
	"github.com/xvs-lb/xvs/pe"
)

// The keepalived.conf of the demo and the ipvsadm rules of the demo
// (`-A -u VIP:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o`) make the same
// service: the same -Sn, and the same decision for every frame of the
// SIPp capture (631 calls on one 5-tuple), logged byte for byte alike.
func TestSIPKeepalivedEqualsIpvsadm(t *testing.T) {
	fromRules, err := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.Load(fromRules, "../../examples/sipp-demo.rules"); err != nil {
		t.Fatal(err)
	}
	l, err := Load("../../examples/sipp-demo.keepalived.conf", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %v", l.Warnings)
	}
	fromKA, _ := ipvs.New(ipvs.Options{Workers: 2, PEExists: pe.Exists})
	if err := l.Build(fromKA); err != nil {
		t.Fatal(err)
	}
	save := func(c *ipvs.Config) string {
		return string(control.SaveRules(c.Snapshot(), ipvsadm.Format{Numeric: true}, ipvsadm.Names{}))
	}
	if a, b := save(fromRules), save(fromKA); a != b || !strings.HasPrefix(a, "-A -u 127.0.0.1:5060 -s rr -p 60 -M 0.0.0.0 --pe sip -o\n") {
		t.Fatalf("-Sn differs:\nrules:\n%s\nkeepalived.conf:\n%s", a, b)
	}
	run := func(c *ipvs.Config) (string, *replay.Result) {
		in, err := capture.Open("../../testdata/captures/sipp-branch-scenario.pcapng")
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		var log bytes.Buffer
		res, err := replay.Run(in, replay.Options{Config: c, Workers: 2, Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		return log.String(), res
	}
	logRules, resRules := run(fromRules)
	logKA, resKA := run(fromKA)
	if logRules != logKA {
		t.Fatal("decision logs differ")
	}
	if resKA.Templates != 610 || resKA.Verdicts != resRules.Verdicts {
		t.Errorf("templates %d, verdicts %v vs %v", resKA.Templates, resKA.Verdicts, resRules.Verdicts)
	}
	t.Logf("%d frames, %d decision-log bytes identical", resKA.Frames, len(logKA))
}

// The complete SIP example of docs/keepalived.md loads and prints the
// rules the document shows.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/keepalived.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(doc), "```")
	var conf, rules string
	for i := 1; i < len(blocks); i += 2 {
		b := strings.TrimPrefix(blocks[i], "\n")
		switch {
		case strings.HasPrefix(b, "! /etc/keepalived/keepalived.conf") && conf == "":
			conf = b
		case strings.HasPrefix(b, "-A -u 10.4.3.192:5060") && rules == "":
			rules = b
		}
	}
	if conf == "" || rules == "" {
		t.Fatal("example not found in docs/keepalived.md")
	}
	out, w, err := loadFiles(t, memFS{"main.conf": conf}, "lb1")
	if err != nil || len(w) != 0 {
		t.Fatalf("%v %v", err, w)
	}
	if out != rules {
		t.Errorf("the document shows\n%s\nxvs prints\n%s", rules, out)
	}
}
