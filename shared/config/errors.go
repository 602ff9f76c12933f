package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Kinds of configuration problems. Every *Error wraps exactly one of them, so callers can
// branch with errors.Is on what went wrong without parsing messages.
var (
	// ErrSyntax is malformed YAML.
	ErrSyntax = errors.New("config: YAML syntax error")
	// ErrUnknownKey is a key the configuration does not define (often a typo).
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrCredentials is a credential-like key in the file; credentials come only from the
	// environment.
	ErrCredentials = errors.New("config: credentials in configuration file")
	// ErrType is a value of the wrong shape: text where a number is expected, a list where a
	// single value is expected, a duration without a unit.
	ErrType = errors.New("config: wrong type")
	// ErrInvalid is a well-typed value that breaks a rule (out of range, unknown enum value,
	// duplicate policy name, missing file).
	ErrInvalid = errors.New("config: invalid value")
)

// Error is one configuration problem: where it is, what is wrong and how to fix it.
type Error struct {
	// File is the configuration file's name as given to Load or Parse; empty when the value
	// does not come from a file (defaults, Validate on a hand-built Config).
	File string
	// Line and Column locate the problem in File, 1-based; 0 when unknown (for example a
	// required key that is missing and whose parent is not in the file either).
	Line, Column int
	// Env is the environment variable that set the offending value, when one did.
	Env string
	// Path is the value's place in the configuration, e.g. "replication.policies[0].regions[1]".
	Path string
	// Problem says what is wrong, in plain words.
	Problem string
	// Fix says what to do about it.
	Fix string
	// Err is the kind of problem: one of ErrSyntax, ErrUnknownKey, ErrCredentials, ErrType
	// or ErrInvalid.
	Err error
}

// Error formats the problem as "file:line:col: path: problem; fix: fix", the form editors and
// terminals turn into a link to the line.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("environment variable ")
		b.WriteString(e.Env)
	case e.File != "" && e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "%s:%d:%d", e.File, e.Line, e.Column)
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File)
	default:
		b.WriteString("config")
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Unwrap returns the kind of problem, so errors.Is(err, ErrUnknownKey) works.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in one configuration, reported together so that a user fixes
// them in one go rather than one run at a time. Load and Parse return it (never empty) as
// their error.
type Errors []*Error

// Error lists the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes every problem to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sort orders problems by place: environment variables first (they apply last but are short),
// then by line and column, then by path, so output is stable and reads top to bottom.
func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := strings.Compare(a.Env, b.Env); c != 0 {
			if a.Env == "" {
				return 1
			}
			if b.Env == "" {
				return -1
			}
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		if a.Column != b.Column {
			return a.Column - b.Column
		}
		return strings.Compare(a.Path, b.Path)
	})
}

// orNil returns es as an error, or nil when there is no problem; it avoids the typed-nil trap
// of returning a nil Errors through an error interface.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	return es
}
