package ipvsadm

import (
	"errors"
	"fmt"
)

// Exit statuses of ipvsadm 1.31.
const (
	// ExitUsage is the status of fail(2, …): every usage and syntax error.
	ExitUsage = 2
	// ExitPopt is the status when popt rejects the command line or the
	// first option is not a command (ipvsadm exits with -1, i.e. 255).
	ExitPopt = 255
)

// ErrUnsupported is wrapped by the UsageError for ipvsadm features xvs
// does not implement (fwmark and SCTP services).
var ErrUnsupported = errors.New("unsupported by xvs")

// UsageError is a command-line error, carrying ipvsadm's message and exit
// status. Print it with Stderr to get ipvsadm's exact bytes.
type UsageError struct {
	// Msg is ipvsadm's message without the trailing newline. It is empty
	// when TryHelp is set.
	Msg string
	// Code is the process exit status (ExitUsage or ExitPopt).
	Code int
	// TryHelp means ipvsadm printed only its "Try `prog -h' …" hint.
	TryHelp bool

	err error // wrapped cause, e.g. ErrUnsupported
}

func (e *UsageError) Error() string {
	if e.TryHelp {
		return "invalid command line (try -h)"
	}
	return e.Msg
}

// Unwrap returns the cause, if any (e.g. ErrUnsupported).
func (e *UsageError) Unwrap() error { return e.err }

// Stderr returns the exact bytes ipvsadm writes to stderr for the error,
// with program as argv[0].
func (e *UsageError) Stderr(program string) string {
	if e.TryHelp {
		return TryHelp(program)
	}
	return e.Msg + "\n"
}

// TryHelp is ipvsadm's hint line for an unusable command line.
func TryHelp(program string) string {
	return fmt.Sprintf("Try `%s -h' or '%s --help' for more information.\n", program, program)
}

func failf(format string, args ...any) *UsageError {
	return &UsageError{Msg: fmt.Sprintf(format, args...), Code: ExitUsage}
}

func tryHelp() *UsageError { return &UsageError{TryHelp: true, Code: ExitPopt} }

// popt error strings (poptStrerror).
const (
	poptBadOpt      = "unknown option"
	poptNoArg       = "missing argument"
	poptUnwantedArg = "option does not take an argument"
)

func poptError(bad, what string) *UsageError {
	return &UsageError{Msg: bad + ": " + what, Code: ExitPopt}
}

// LineError is an error in a rules file, at a 1-based line.
type LineError struct {
	Name string // file name for the message; "rules" by default
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }

// Unwrap returns the error of the line, typically a *UsageError.
func (e *LineError) Unwrap() error { return e.Err }
