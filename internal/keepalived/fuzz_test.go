package keepalived

import (
	"errors"
	"strings"
	"testing"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/pe"
)

// FuzzLoad feeds arbitrary text (with two includable files beside it) to
// the whole reader: lexer, includes, conditionals, parameters, blocks,
// keepalived's interpretation and the mapping to xvsadm commands. It must
// never panic or hang; a refusal is an *Error whose diagnostics name a
// line of an existing file; an accepted configuration builds (or is
// refused by the model with a position) and diffs against an empty table.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{sipConf, reloadBase, "include inc/*.conf\n", "@lb1 virtual_server 10.0.0.1 80 {\n}\n",
		"$V=10.0.0.1\nvirtual_server $V 80 {\nreal_server ${V} 80 { MISC_CHECK { misc_path \"/bin/true 'a b'\" } }\n}\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 1<<16 {
			return
		}
		m := memFS{
			"main.conf":      text,
			"inc/a.conf":     "virtual_server 10.1.0.1 5060 {\nprotocol UDP\nreal_server 10.1.1.1 5060 { TCP_CHECK { } }\n}\n",
			"inc/b.conf":     "real_server 10.2.1.1 5060 {\n",
			"inc/loop.conf":  "include loop.conf\n",
			"inc/empty.conf": "",
		}
		lines := map[string]int{}
		for name, s := range m {
			lines[name] = strings.Count(s, "\n") + 1
		}
		l, err := Load("main.conf", m.options("lb1"))
		if err != nil {
			var ke *Error
			if !errors.As(err, &ke) || len(ke.Diags) == 0 {
				t.Fatalf("refusal %T %v", err, err)
			}
			for _, d := range ke.Diags {
				if d.Severity == Warning || d.Pos.File != "" && (d.Pos.Line < 1 || d.Pos.Line > lines[d.Pos.File]) {
					t.Fatalf("diagnostic %v out of the file (%d lines)", d, lines[d.Pos.File])
				}
				if d.Severity == Unsupported && d.Feature == "" {
					t.Fatalf("unsupported without a feature: %v", d)
				}
			}
			return
		}
		cfg, _ := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
		if err := l.Build(cfg); err != nil {
			var ke *Error
			if !errors.As(err, &ke) || ke.Diags[0].Pos.Line < 1 {
				t.Fatalf("build error %T %v", err, err)
			}
			return
		}
		empty, _ := ipvs.New(ipvs.Options{Workers: 1, PEExists: pe.Exists})
		ch, err := l.Diff(empty.Snapshot(), nil)
		if err != nil {
			t.Fatalf("diff against an empty table: %v", err)
		}
		if len(ch.Owned) != len(cfg.Snapshot().Services()) {
			t.Fatalf("owned %d, services %d", len(ch.Owned), len(cfg.Snapshot().Services()))
		}
	})
}
