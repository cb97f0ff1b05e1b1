package keepalived

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Limits of the reader. keepalived has none of the first four; they keep a
// hostile or runaway configuration (an include loop, a huge file) from
// exhausting memory.
const (
	// MaxFileBytes bounds one configuration file.
	MaxFileBytes = 16 << 20
	// MaxTotalBytes bounds all files of one configuration together.
	MaxTotalBytes = 64 << 20
	// MaxIncludeDepth bounds include nesting (an include loop ends here).
	MaxIncludeDepth = 16
	// MaxFiles bounds the files one configuration may include.
	MaxFiles = 1024
	// MaxLineBytes is keepalived's line buffer (MAXBUF, 1024 bytes with the
	// terminating NUL): keepalived splits a longer line in two, so xvs
	// refuses it instead of guessing.
	MaxLineBytes = 1023
	// maxExpansions bounds parameter substitutions in one line ($A=$A
	// would never end).
	maxExpansions = 256
	// MaxDepth bounds block nesting.
	MaxDepth = 32
)

// Options configure reading a configuration.
type Options struct {
	// ConfigID selects the conditional lines ("@id …", "@^id …") as
	// keepalived -i does; "" means the host name up to its first dot,
	// keepalived's default.
	ConfigID string
	// ReadFile and Glob access the files; nil means the operating system
	// (os.ReadFile, and glob(3)'s semantics with brace expansion). Tests
	// and the fuzzer supply their own.
	ReadFile func(name string) ([]byte, error)
	Glob     func(pattern string) ([]string, error)
	// Stat reports whether name is a regular, non-executable file (what
	// keepalived includes); nil means the operating system's.
	Stat func(name string) (regular, executable bool, err error)
	// UserExists reports whether a user exists (MISC_CHECK scripts run as
	// keepalived_script when it does); nil means the system's user
	// database.
	UserExists func(name string) bool
}

func (o *Options) fill() {
	if o.ConfigID == "" {
		h, _ := os.Hostname()
		o.ConfigID, _, _ = strings.Cut(h, ".")
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Glob == nil {
		o.Glob = globBraces
	}
	if o.Stat == nil {
		o.Stat = func(name string) (bool, bool, error) {
			fi, err := os.Stat(name)
			if err != nil {
				return false, false, err
			}
			return fi.Mode().IsRegular(), fi.Mode()&0o111 != 0, nil
		}
	}
}

// line is one logical line as keepalived's read_line returns it: comments
// removed, conditional prefix applied, parameters substituted, includes
// followed, and every '{' and '}' on a line of its own.
type line struct {
	pos  Pos
	text string
}

type srcFile struct {
	name  string
	dir   string
	data  []byte
	off   int
	line  int
	depth int
}

// definition is a $NAME=VALUE parameter.
type definition struct {
	value string
	std   bool // a pre-defined one (_PWD, _INSTANCE, _HASH, _BANG)
}

// reader turns configuration files into logical lines.
type reader struct {
	o     Options
	ds    *diags
	stack []*srcFile
	files int
	total int

	defs     map[string]definition
	residue  string
	resPos   Pos
	hasRes   bool
	multiDef bool // inside an (unsupported) multi-line definition
}

func newReader(path string, o Options, ds *diags) *reader {
	o.fill()
	r := &reader{o: o, ds: ds, defs: map[string]definition{
		"_HASH": {"#", true}, "_BANG": {"!", true}, "_INSTANCE": {o.ConfigID, true},
	}}
	r.open(path, Pos{}, 0, true)
	return r
}

// open pushes one file.
func (r *reader) open(name string, at Pos, depth int, required bool) bool {
	if r.files >= MaxFiles {
		r.ds.invalid(at, "more than %d configuration files", MaxFiles)
		return false
	}
	data, err := r.o.ReadFile(name)
	if err != nil {
		if required {
			r.ds.invalid(at, "%s: %v", name, shortPathErr(err))
		} else {
			r.ds.warn(at, "configuration file '%s' open problem (%v) - skipping", name, shortPathErr(err))
		}
		return false
	}
	if len(data) > MaxFileBytes || r.total+len(data) > MaxTotalBytes {
		r.ds.invalid(at, "%s: configuration larger than %d bytes", name, min(MaxFileBytes, MaxTotalBytes))
		return false
	}
	r.files++
	r.total += len(data)
	r.stack = append(r.stack, &srcFile{name: name, dir: filepath.Dir(name), data: data, depth: depth})
	return true
}

func shortPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// physical returns the next physical line of the innermost file, without
// its end of line, following the include stack to its end.
func (r *reader) physical() (string, Pos, bool) {
	for len(r.stack) > 0 {
		f := r.stack[len(r.stack)-1]
		if f.off >= len(f.data) {
			r.stack = r.stack[:len(r.stack)-1]
			continue
		}
		rest := f.data[f.off:]
		n := bytes.IndexByte(rest, '\n')
		var l []byte
		if n < 0 {
			l, f.off = rest, len(f.data)
		} else {
			l, f.off = rest[:n], f.off+n+1
		}
		f.line++
		for len(l) > 0 && (l[len(l)-1] == '\r' || l[len(l)-1] == '\n') {
			l = l[:len(l)-1]
		}
		return string(l), Pos{f.name, f.line}, true
	}
	return "", Pos{}, false
}

func (r *reader) current() *srcFile {
	if len(r.stack) == 0 {
		return nil
	}
	return r.stack[len(r.stack)-1]
}

// next returns the next logical line.
func (r *reader) next() (line, bool) {
	for {
		var text string
		var pos Pos
		if r.hasRes {
			text, pos, r.hasRes = r.residue, r.resPos, false
		} else {
			raw, p, ok := r.physical()
			if !ok {
				return line{}, false
			}
			pos = p
			if len(raw) > MaxLineBytes {
				r.ds.invalid(pos, "line longer than %d bytes (keepalived would split it)", MaxLineBytes)
				continue
			}
			if r.multiDef {
				// The continuation of an unsupported multi-line definition.
				r.multiDef = strings.HasSuffix(strings.TrimRight(raw, " \t"), `\`)
				continue
			}
			if strings.Trim(raw, " \t") == "" {
				continue
			}
			var unterminated bool
			text, unterminated = decomment(raw)
			if unterminated {
				r.ds.invalid(pos, "unterminated quote '%s'", text)
			}
			if text == "" {
				continue
			}
		}
		text, ok := r.preprocess(text, pos)
		if !ok || text == "" {
			continue
		}
		if r.include(text, pos) {
			continue
		}
		return r.split(text, pos), true
	}
}

// preprocess applies conditional configuration and parameters; ok false
// drops the line.
func (r *reader) preprocess(text string, pos Pos) (string, bool) {
	for range maxExpansions {
		if text[0] == '@' {
			rev, ofs := false, 1
			if len(text) > 1 && text[1] == '^' {
				rev, ofs = true, 2
			}
			sp := strings.IndexAny(text[ofs:], " \t")
			if sp < 0 {
				return "", false // nothing after the id: keepalived drops the line
			}
			id := text[ofs : ofs+sp]
			if (id != r.o.ConfigID) != rev {
				return "", false
			}
			text = strings.TrimLeft(text[ofs+sp:], " \t")
			if text == "" {
				return "", false
			}
		}
		if text[0] == '$' {
			if name, value, ok := definitionLine(text); ok {
				if strings.HasSuffix(value, `\`) {
					r.ds.unsupported(pos, "multiline definition", "multi-line parameter definition $%s (xvs reads single-line definitions only)", name)
					r.multiDef = true
					return "", false
				}
				r.defs[name] = definition{value: value}
				return "", false
			}
		}
		if strings.HasPrefix(text, "~SEQ") || strings.HasPrefix(text, "~LST") {
			r.ds.unsupported(pos, text[:4], "%s blocks are not supported by xvs", text[:4])
			return "", false
		}
		if text[0] == '~' || !strings.Contains(text, "$") {
			return text, true
		}
		out, changed, bad := r.substitute(text, pos)
		if bad || !changed {
			return out, !bad
		}
		text, _ = decomment(out)
		if text == "" {
			return "", false
		}
		if text[0] != '@' && !strings.Contains(text, "$") {
			return text, true
		}
	}
	r.ds.invalid(pos, "parameter substitution does not end")
	return "", false
}

// definitionLine parses "$NAME=VALUE" (whitespace allowed before '=' and
// after it).
func definitionLine(text string) (name, value string, ok bool) {
	if len(text) < 2 || !(isAlpha(text[1]) || text[1] == '_') {
		return "", "", false
	}
	i := 2
	for i < len(text) && (isAlnum(text[i]) || text[i] == '_') {
		i++
	}
	name = text[1:i]
	rest := strings.TrimLeft(text[i:], " \t")
	if !strings.HasPrefix(rest, "=") {
		return "", "", false
	}
	return name, strings.TrimLeft(rest[1:], " \t"), true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// substitute replaces $NAME (followed by a blank, ',', ')' or the end) and
// ${NAME}, rescanning each replacement in place as keepalived does.
func (r *reader) substitute(text string, pos Pos) (out string, changed, bad bool) {
	cur := 0
	for n := 0; ; n++ {
		if n > maxExpansions || len(text) > MaxLineBytes {
			r.ds.invalid(pos, "parameter substitution exceeds the line length")
			return text, changed, true
		}
		i := strings.IndexByte(text[cur:], '$')
		if i < 0 || cur+i+1 >= len(text) {
			return text, changed, false
		}
		at := cur + i
		name, width, ok := paramRef(text[at+1:])
		if !ok {
			cur = at + 1
			continue
		}
		var value string
		switch name {
		case "_PWD":
			f := r.current()
			dir := "."
			if f != nil {
				dir = f.dir
			}
			if abs, err := filepath.Abs(dir); err == nil {
				dir = abs
			}
			value = dir
		case "_RANDOM":
			r.ds.unsupported(pos, "${_RANDOM}", "${_RANDOM} is not supported by xvs (a random configuration cannot be reloaded reproducibly)")
			return text, changed, true
		default:
			d, found := r.defs[name]
			if !found {
				cur = at + 1
				continue
			}
			value = d.value
		}
		text = text[:at] + value + text[at+1+width:]
		changed = true
		cur = at
		if strings.HasPrefix(strings.TrimLeft(value, " \t"), "~") {
			return text, changed, false
		}
	}
}

// paramRef parses the reference after a '$': "NAME" followed by a blank,
// ',', ')' or the end, or "{NAME}"; width is the bytes consumed after '$'.
// "${_RANDOM 1 10}" is recognised so that it can be refused.
func paramRef(s string) (name string, width int, ok bool) {
	braces := strings.HasPrefix(s, "{")
	if braces {
		s = s[1:]
	}
	if s == "" || !(isAlpha(s[0]) || s[0] == '_') {
		return "", 0, false
	}
	i := 1
	for i < len(s) && (isAlnum(s[i]) || s[i] == '_') {
		i++
	}
	name = s[:i]
	if braces {
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j >= len(s) || s[j] != '}' || (j > i && name != "_RANDOM") {
			return "", 0, false
		}
		return name, j + 2, true
	}
	if i < len(s) && !strings.ContainsRune(" \t,)", rune(s[i])) {
		return "", 0, false
	}
	return name, i, true
}

// decomment is keepalived's decomment(): leading blanks go; '#' or '!'
// outside double quotes starts a comment; "\#" and "\!" outside quotes are
// a literal '#' and '!'; trailing blanks go. unterminated reports an
// unbalanced double quote.
func decomment(s string) (out string, unterminated bool) {
	s = strings.TrimLeft(s, " \t")
	b := make([]byte, 0, len(s))
	quote := false
	skip := -1
	cont := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			if skip < 0 {
				quote = !quote
			}
		case '\\':
			if i+1 >= len(s) {
				cont = true
				i = len(s)
				continue
			}
			if !quote && (s[i+1] == '#' || s[i+1] == '!') {
				b = append(b, s[i+1])
			} else {
				b = append(b, c, s[i+1])
			}
			i++
			continue
		case '#', '!':
			if !quote && skip < 0 {
				skip = len(b)
			}
		}
		b = append(b, c)
	}
	if skip >= 0 {
		b = b[:skip]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	if cont {
		b = append(b, '\\')
	}
	return string(b), quote
}

// include follows an include line ("include FILE", or the includer,
// includem, includew, includeb and includea variants) and reports whether
// text was one.
func (r *reader) include(text string, pos Pos) bool {
	if !strings.HasPrefix(text, "include") || len(text) < 8 {
		return false
	}
	var pattern string
	strict := true
	switch {
	case isSpace(text[7]):
		pattern, strict = text[8:], false
	case len(text) > 8 && strings.IndexByte("rmwba", text[7]) >= 0 && isSpace(text[8]):
		pattern = text[9:]
	default:
		return false
	}
	pattern = strings.TrimLeft(pattern, " \t")
	f := r.current()
	depth := 0
	if f != nil {
		depth = f.depth + 1
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(f.dir, pattern)
		}
	}
	if depth > MaxIncludeDepth {
		r.ds.invalid(pos, "include nesting deeper than %d (an include loop?)", MaxIncludeDepth)
		return true
	}
	matches, err := r.o.Glob(pattern)
	if err != nil {
		r.ds.invalid(pos, "error reading config file(s): %s: %v", pattern, err)
		return true
	}
	var files []string
	for _, m := range matches {
		regular, exec, err := r.o.Stat(m)
		switch {
		case err != nil || !regular || exec:
			msg := "configuration file '%s' is not a regular non-executable file - skipping"
			if strict {
				r.ds.invalid(pos, msg, m)
			} else {
				r.ds.warn(pos, msg, m)
			}
		default:
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		if strict {
			r.ds.invalid(pos, "no config files matched '%s'", pattern)
		} else {
			r.ds.warn(pos, "no config files matched '%s'", pattern)
		}
		return true
	}
	// The stack is read from its end: push the last match first.
	for i := len(files) - 1; i >= 0; i-- {
		r.open(files[i], pos, depth, strict)
	}
	return true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// split returns the part of text before its first '{' or '}' outside
// double quotes (or the brace itself when text starts with one) and keeps
// the rest for the next call, so that every brace is a line of its own.
func (r *reader) split(text string, pos Pos) line {
	p := -1
	if text[0] == '{' || text[0] == '}' {
		p = 0
	} else {
		for i := 0; i < len(text); i++ {
			c := text[i]
			if c == '"' {
				j := strings.IndexByte(text[i+1:], '"')
				if j < 0 {
					break
				}
				i += j + 1
				continue
			}
			if c == '{' || c == '}' {
				p = i
				break
			}
		}
	}
	if p < 0 {
		return line{pos, text}
	}
	var head, rest string
	if p == 0 {
		head, rest = text[:1], strings.TrimLeft(text[1:], " \t")
	} else {
		head, rest = strings.TrimRight(text[:p], " \t"), text[p:]
	}
	rest = strings.TrimRight(rest, " \t")
	if rest != "" {
		r.residue, r.resPos, r.hasRes = rest, pos, true
	}
	return line{pos, head}
}

// words splits a logical line into words as keepalived's alloc_strvec
// does: at blanks; a word starting with '"' runs to the next '"' (no
// escapes) and loses its quotes; an unquoted word ends at a blank or '"'.
// ok is false for an unmatched quote (the words before it are returned).
func words(text string) (w []string, ok bool) {
	i := 0
	for {
		for i < len(text) && isSpace(text[i]) {
			i++
		}
		if i >= len(text) {
			return w, true
		}
		if text[i] == '"' {
			j := strings.IndexByte(text[i+1:], '"')
			if j < 0 {
				return w, false
			}
			w = append(w, text[i+1:i+1+j])
			i += j + 2
			continue
		}
		j := i
		for j < len(text) && !isSpace(text[j]) && text[j] != '"' {
			j++
		}
		w = append(w, text[i:j])
		i = j
	}
}

// globBraces is glob(3) with GLOB_BRACE: csh-style braces expand first,
// each alternative is globbed in order (sorted within itself), and a
// pattern without wildcards matches itself if it exists.
func globBraces(pattern string) ([]string, error) {
	var out []string
	for _, p := range expandBraces(pattern, 0) {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, err
		}
		slices.Sort(m)
		for _, f := range m {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// maxBraceExpansions bounds what one include pattern expands to.
const maxBraceExpansions = 1024

// expandBraces expands the first top-level {a,b,...} of p (a backslash
// escapes the next character) and recurses.
func expandBraces(p string, depth int) []string {
	if depth > 16 {
		return []string{p}
	}
	start, level := -1, 0
	var commas []int
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			if level == 0 {
				start = i
				commas = commas[:0]
			}
			level++
		case ',':
			if level == 1 {
				commas = append(commas, i)
			}
		case '}':
			if level == 0 {
				continue
			}
			level--
			if level == 0 {
				pre, post := p[:start], p[i+1:]
				var alts []string
				prev := start + 1
				for _, c := range commas {
					alts = append(alts, p[prev:c])
					prev = c + 1
				}
				alts = append(alts, p[prev:i])
				var out []string
				for _, a := range alts {
					for _, e := range expandBraces(pre+a+post, depth+1) {
						if len(out) >= maxBraceExpansions {
							return out
						}
						out = append(out, e)
					}
				}
				return out
			}
		}
	}
	return []string{p}
}
