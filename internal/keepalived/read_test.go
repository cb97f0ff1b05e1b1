package keepalived

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// memFS is an in-memory file tree for Options.
type memFS map[string]string

func (m memFS) options(id string) Options {
	return Options{
		ConfigID: id,
		ReadFile: func(name string) ([]byte, error) {
			if s, ok := m[name]; ok {
				return []byte(s), nil
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		},
		Glob: func(pattern string) ([]string, error) {
			var out []string
			for _, p := range expandBraces(pattern, 0) {
				var part []string
				for name := range m {
					if ok, _ := filepath.Match(p, name); ok {
						part = append(part, name)
					}
				}
				slices.Sort(part)
				out = append(out, part...)
			}
			return out, nil
		},
		Stat:       func(string) (bool, bool, error) { return true, false, nil },
		UserExists: func(string) bool { return false },
	}
}

// lines reads a configuration into its logical lines, rendered "n: text".
func lines(t *testing.T, m memFS, id string) ([]string, []Diag) {
	t.Helper()
	ds := &diags{}
	r := newReader("main.conf", m.options(id), ds)
	var out []string
	for {
		l, ok := r.next()
		if !ok {
			return out, ds.list
		}
		out = append(out, filepath.Base(l.pos.File)+":"+itoa(l.pos.Line)+": "+l.text)
	}
}

func TestDecomment(t *testing.T) {
	for in, want := range map[string]string{
		"  weight 1   ! comment":           "weight 1",
		"weight 1 # comment":               "weight 1",
		`path "/a#b" # c`:                  `path "/a#b"`,
		`misc_path "/x ! y" ! z`:           `misc_path "/x ! y"`,
		`url \#not-a-comment`:              `url #not-a-comment`,
		`a \!bang`:                         `a !bang`,
		"\tvirtual_server 1.2.3.4 80 {\t":  "virtual_server 1.2.3.4 80 {",
		`single 'quotes # do not protect'`: `single 'quotes`,
		"!only a comment":                  "",
	} {
		if got, _ := decomment(in); got != want {
			t.Errorf("decomment(%q) = %q, want %q", in, got, want)
		}
	}
	if _, unterminated := decomment(`path "/a`); !unterminated {
		t.Error(`unterminated quote not reported`)
	}
}

func TestWords(t *testing.T) {
	for in, want := range map[string][]string{
		`misc_path "/usr/bin/x a b"`: {"misc_path", "/usr/bin/x a b"},
		`a"b c"d`:                    {"a", "b c", "d"},
		"a\tb  c":                    {"a", "b", "c"},
		`x ""`:                       {"x", ""},
		`notify 'a b'`:               {"notify", "'a", "b'"},
	} {
		if got, ok := words(in); !ok || !slices.Equal(got, want) {
			t.Errorf("words(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	if _, ok := words(`a "b`); ok {
		t.Error("unmatched quote accepted")
	}
}

// Every brace becomes a line of its own, as keepalived's read_line makes
// it; braces in double quotes do not count.
func TestBraceSplitting(t *testing.T) {
	got, ds := lines(t, memFS{"main.conf": `virtual_server 10.0.0.1 80 { delay_loop 6
  real_server 10.0.1.1 80 { weight 2 }
}
x "a{b}" {
}`}, "")
	want := []string{
		"main.conf:1: virtual_server 10.0.0.1 80", "main.conf:1: {", "main.conf:1: delay_loop 6",
		"main.conf:2: real_server 10.0.1.1 80", "main.conf:2: {", "main.conf:2: weight 2", "main.conf:2: }",
		"main.conf:3: }", `main.conf:4: x "a{b}"`, "main.conf:4: {", "main.conf:5: }",
	}
	if !slices.Equal(got, want) || len(ds) != 0 {
		t.Errorf("got %q %v\nwant %q", got, ds, want)
	}
}

// "@id" lines apply only on the node whose config id matches, "@^id" lines
// everywhere else; a line that is only "@id" is dropped.
func TestConditionalLines(t *testing.T) {
	m := memFS{"main.conf": "@lb1 priority 150\n@lb2 priority 100\n@^lb1 state BACKUP\n@lb1\nweight 1\n"}
	got, _ := lines(t, m, "lb1")
	if want := []string{"main.conf:1: priority 150", "main.conf:5: weight 1"}; !slices.Equal(got, want) {
		t.Errorf("lb1: %q", got)
	}
	got, _ = lines(t, m, "lb2")
	if want := []string{"main.conf:2: priority 100", "main.conf:3: state BACKUP", "main.conf:5: weight 1"}; !slices.Equal(got, want) {
		t.Errorf("lb2: %q", got)
	}
}

func TestParameters(t *testing.T) {
	m := memFS{"main.conf": `$VIP=10.0.0.1
$PORT = 5060
$ADDR=${VIP}
virtual_server $ADDR $PORT
real_server ${VIP}0 ${PORT}
script "${_HASH}x"
$UNDEFINED stays
~SEQ(I, 1, 3) ip 10.0.0.$I
$M=a \
`}
	got, ds := lines(t, m, "")
	want := []string{"main.conf:4: virtual_server 10.0.0.1 5060", "main.conf:5: real_server 10.0.0.10 5060",
		`main.conf:6: script "#x"`, "main.conf:7: $UNDEFINED stays"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	var feats []string
	for _, d := range ds {
		feats = append(feats, d.Feature)
	}
	if !slices.Equal(feats, []string{"~SEQ", "multiline definition"}) {
		t.Errorf("diagnostics %v", ds)
	}
	// A self-referencing parameter ends with an error, not a hang.
	if _, ds := lines(t, memFS{"main.conf": "$A=x$A\nfoo $A\n"}, ""); len(ds) != 1 || ds[0].Severity != Invalid {
		t.Errorf("recursive parameter: %v", ds)
	}
}

// Includes are textual, relative to the including file's directory, with
// globs and csh braces; executable files and misses are reported.
func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("keepalived.conf", "global_defs {\n}\ninclude conf.d/*.conf\ninclude {a,b}.inc\ninclude missing/*.conf\nincluder x.exe\n", 0o644)
	write("conf.d/10-sip.conf", "virtual_server 10.0.0.1 5060 {\ninclude ../rs/*.rs\n}\n", 0o644)
	write("conf.d/20-web.conf", "# nothing\n", 0o644)
	write("rs/1.rs", "real_server 10.0.1.1 5060\n", 0o644)
	write("rs/2.rs", "real_server 10.0.1.2 5060\n", 0o644)
	write("a.inc", "A\n", 0o644)
	write("b.inc", "B\n", 0o644)
	write("x.exe", "X\n", 0o755)
	ds := &diags{}
	r := newReader(filepath.Join(dir, "keepalived.conf"), Options{ConfigID: "x"}, ds)
	var got []string
	for {
		l, ok := r.next()
		if !ok {
			break
		}
		rel, _ := filepath.Rel(dir, l.pos.File)
		got = append(got, rel+":"+itoa(l.pos.Line)+": "+l.text)
	}
	want := []string{"keepalived.conf:1: global_defs", "keepalived.conf:1: {", "keepalived.conf:2: }",
		"conf.d/10-sip.conf:1: virtual_server 10.0.0.1 5060", "conf.d/10-sip.conf:1: {",
		"rs/1.rs:1: real_server 10.0.1.1 5060", "rs/2.rs:1: real_server 10.0.1.2 5060", "conf.d/10-sip.conf:3: }",
		"a.inc:1: A", "b.inc:1: B"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	var msgs []string
	for _, d := range ds.list {
		msgs = append(msgs, d.Severity.String()+" "+d.Msg)
	}
	if len(msgs) != 3 || !strings.HasPrefix(msgs[0], "warning no config files matched") ||
		!strings.Contains(msgs[1], "not a regular non-executable file") || msgs[1][:5] != "error" ||
		!strings.HasPrefix(msgs[2], "error no config files matched") {
		t.Errorf("diagnostics %q", msgs)
	}
}

func TestIncludeLoopAndLimits(t *testing.T) {
	_, ds := lines(t, memFS{"main.conf": "include main.conf\n"}, "")
	if len(ds) == 0 || !strings.Contains(ds[len(ds)-1].Msg, "include nesting deeper") {
		t.Errorf("include loop: %v", ds)
	}
	_, ds = lines(t, memFS{"main.conf": "weight " + strings.Repeat("1", MaxLineBytes) + "\n"}, "")
	if len(ds) != 1 || !strings.Contains(ds[0].Msg, "line longer") {
		t.Errorf("long line: %v", ds)
	}
	_, err := Load("nope.conf", memFS{}.options(""))
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v", err)
	}
}

func TestTreeErrors(t *testing.T) {
	for text, want := range map[string]string{
		"a {\n":        "'a' block not closed",
		"}\n":          "extra '}' found",
		"{\n}\n":       "unexpected '{'",
		"a {\n}\n{\n}": "unexpected '{'",
	} {
		ds := &diags{}
		parseTree("main.conf", memFS{"main.conf": text}.options(""), ds)
		if len(ds.list) == 0 || !strings.Contains(ds.list[0].Msg, want) {
			t.Errorf("%q: %v, want %q", text, ds.list, want)
		}
	}
}

func TestExpandBraces(t *testing.T) {
	got := expandBraces("/etc/{a,b/{c,d}}/*.conf", 0)
	want := []string{"/etc/a/*.conf", "/etc/b/c/*.conf", "/etc/b/d/*.conf"}
	if !slices.Equal(got, want) {
		t.Errorf("%q", got)
	}
	if got := expandBraces(`x\{a,b}`, 0); !slices.Equal(got, []string{`x\{a,b}`}) {
		t.Errorf("escaped brace: %q", got)
	}
}
