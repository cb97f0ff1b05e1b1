package keepalived

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Pos is a position in a configuration file: the file's path as it was
// opened (an include's path joined to its including file's directory) and
// a 1-based line.
type Pos struct {
	File string
	Line int
}

// String renders the position as "file:line".
func (p Pos) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// Severity grades a diagnostic.
type Severity uint8

// Severities.
const (
	// Warning: understood, with a default applied, a keepalived keyword that
	// does not concern xvs, or a feature mapped approximately. The
	// configuration loads.
	Warning Severity = iota
	// Unsupported: a keepalived feature xvs does not have (fwmark services,
	// sorry_server, …). The configuration is refused; Diag.Feature names it.
	Unsupported
	// Invalid: the file is malformed or a value is out of range (keepalived
	// would report a configuration error). The configuration is refused.
	Invalid
)

var severityNames = [...]string{"warning", "unsupported", "error"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "severity(" + strconv.Itoa(int(s)) + ")"
}

// Diag is one diagnostic about a configuration.
type Diag struct {
	Pos      Pos
	Severity Severity
	// Feature names the unsupported keepalived feature (the keyword, e.g.
	// "sorry_server", "fwmark"); empty unless Severity is Unsupported.
	Feature string
	Msg     string
}

// String renders the diagnostic as "file:line: severity: message".
func (d Diag) String() string {
	var b strings.Builder
	if d.Pos.File != "" {
		b.WriteString(d.Pos.String())
		b.WriteString(": ")
	}
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	b.WriteString(d.Msg)
	return b.String()
}

// Sentinel errors; an *Error wraps the one of its most severe diagnostic.
var (
	// ErrUnsupported: the configuration uses a feature xvs does not have.
	ErrUnsupported = errors.New("unsupported keepalived feature")
	// ErrInvalid: the configuration is malformed.
	ErrInvalid = errors.New("invalid keepalived configuration")
)

// Error is a refused configuration: every diagnostic that refuses it
// (Invalid and Unsupported), in file order.
type Error struct {
	Diags []Diag
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diags {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// Unwrap returns ErrInvalid when any diagnostic is Invalid, else
// ErrUnsupported.
func (e *Error) Unwrap() error {
	for _, d := range e.Diags {
		if d.Severity == Invalid {
			return ErrInvalid
		}
	}
	return ErrUnsupported
}

// diags collects diagnostics.
type diags struct {
	list []Diag
}

func (ds *diags) warn(p Pos, format string, args ...any) {
	ds.list = append(ds.list, Diag{Pos: p, Severity: Warning, Msg: fmt.Sprintf(format, args...)})
}

func (ds *diags) invalid(p Pos, format string, args ...any) {
	ds.list = append(ds.list, Diag{Pos: p, Severity: Invalid, Msg: fmt.Sprintf(format, args...)})
}

func (ds *diags) unsupported(p Pos, feature, format string, args ...any) {
	ds.list = append(ds.list, Diag{Pos: p, Severity: Unsupported, Feature: feature, Msg: fmt.Sprintf(format, args...)})
}

// err returns the *Error of the refusing diagnostics, or nil.
func (ds *diags) err() error {
	var bad []Diag
	for _, d := range ds.list {
		if d.Severity != Warning {
			bad = append(bad, d)
		}
	}
	if bad == nil {
		return nil
	}
	return &Error{Diags: bad}
}

// warnings returns the Warning diagnostics.
func (ds *diags) warnings() []Diag {
	var w []Diag
	for _, d := range ds.list {
		if d.Severity == Warning {
			w = append(w, d)
		}
	}
	return w
}
