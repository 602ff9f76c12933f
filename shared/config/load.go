package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// source is where a loaded configuration came from, kept to point problems at lines.
type source struct {
	// file is the name used in messages (the path given to Load, or Parse's filename).
	file string
	// doc is the parsed file; nil when there was no file.
	doc *ast.File
	// env maps a path (as fieldPath.String) to the variable that overrode it.
	env map[string]string
}

// DefaultFile is the configuration file's conventional name.
const DefaultFile = "imagerelay.yaml"

// maxFileSize bounds what Parse reads; a configuration is a few kilobytes.
const maxFileSize = 1 << 20

// Load reads, decodes and validates the configuration file at path, then applies IMAGERELAY_*
// environment overrides from the process environment. A missing file is an error (wrapping
// fs.ErrNotExist); use LoadOrDefault where running without a file is fine. Any other problem
// is returned as Errors.
func Load(path string) (*Config, error) {
	return LoadWithEnv(path, os.Getenv)
}

// LoadWithEnv is Load with the environment read through getenv, so tests and embedders can
// supply their own. An empty value counts as unset.
func LoadWithEnv(path string, getenv func(string) string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data, getenv)
}

// LoadOrDefault is Load, except that a file that does not exist yields the defaults (with
// environment overrides applied and validated) instead of an error.
func LoadOrDefault(path string) (*Config, error) {
	return loadOrDefault(path, os.Getenv)
}

func loadOrDefault(path string, getenv func(string) string) (*Config, error) {
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return parse(path, nil, getenv)
	}
	if err != nil {
		return nil, err
	}
	return parse(path, data, getenv)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so that parse can tell an oversized file from a full one.
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return data, nil
}

// Parse decodes and validates a configuration held in memory; filename is used only in error
// messages. It does not read the environment: use LoadWithEnv for that. Empty data yields the
// defaults.
func Parse(filename string, data []byte) (*Config, error) {
	return parse(filename, data, func(string) string { return "" })
}

// parse runs the whole pipeline: syntax, schema walk, decode over the defaults, environment
// overrides, validation, and finally the inheritance of section values into policies.
func parse(filename string, data []byte, getenv func(string) string) (*Config, error) {
	cfg := Defaults()
	cfg.src = &source{file: filename, env: map[string]string{}}
	if len(data) > maxFileSize {
		return nil, Errors{{File: filename, Line: 1, Column: 1, Problem: fmt.Sprintf("the file is larger than %d bytes", maxFileSize), Fix: "a configuration file is a few kilobytes; check that the right file is named", Err: ErrInvalid}}
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeFile(cfg, filename, data); err != nil {
			return nil, err
		}
	}
	if errs := applyEnv(cfg, getenv); len(errs) > 0 {
		return nil, errs.orNil()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.inherit()
	return cfg, nil
}

// decodeFile parses data and decodes it into cfg, which holds the defaults.
func decodeFile(cfg *Config, filename string, data []byte) (err error) {
	// goccy/go-yaml is a large hand-written parser; a crash on hostile input must surface as
	// an error, not take the process down at start-up.
	defer func() {
		if r := recover(); r != nil {
			err = Errors{{File: filename, Problem: fmt.Sprintf("the YAML parser failed: %v", r), Fix: "simplify the YAML syntax around recent edits", Err: ErrSyntax}}
		}
	}()
	doc, perr := parser.ParseBytes(data, 0)
	if perr != nil {
		return Errors{yamlError(filename, perr, nil)}
	}
	cfg.src.doc = doc
	var body ast.Node
	for i, d := range doc.Docs {
		if d == nil || isEmpty(d.Body) {
			continue
		}
		if body != nil {
			line, col := nodePosition(d.Body)
			return Errors{{File: filename, Line: line, Column: col, Problem: fmt.Sprintf("the file holds more than one YAML document (document %d starts here)", i+1), Fix: `keep one document: remove the "---" separator and merge the settings`, Err: ErrSyntax}}
		}
		body = d.Body
	}
	if body == nil {
		return nil
	}
	c := newChecker(filename)
	c.collectAnchors(body, 0)
	if c.expandedSize(body, 0, map[string]bool{}, map[string]int{}) > maxExpandedNodes {
		line, col := nodePosition(body)
		return Errors{{File: filename, Line: line, Column: col, Problem: fmt.Sprintf("the document's aliases expand to more than %d values", maxExpandedNodes), Fix: "use fewer nested aliases (*name); a configuration needs few if any", Err: ErrInvalid}}
	}
	c.credentials(body, nil, 0)
	c.check(body, configType, nil, 0)
	if len(c.errs) > 0 {
		return c.errs.orNil()
	}
	if derr := yaml.UnmarshalWithOptions(data, cfg, yaml.Strict()); derr != nil {
		return Errors{yamlError(filename, derr, c.paths)}
	}
	return nil
}

func isEmpty(n ast.Node) bool {
	switch n.(type) {
	case nil, *ast.CommentGroupNode:
		return true
	}
	return false
}

// yamlError converts a goccy/go-yaml error into an *Error with its position. Only the
// library's message is kept, never its source excerpt: the excerpt could show a secret that
// someone put in the file.
func yamlError(filename string, err error, paths map[[2]int]fieldPath) *Error {
	e := &Error{File: filename, Problem: err.Error(), Fix: "correct the YAML at this position", Err: ErrSyntax}
	var ye yaml.Error
	if errors.As(err, &ye) {
		e.Problem = ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
			if p, ok := paths[[2]int{e.Line, e.Column}]; ok {
				e.Path = p.String()
			}
		}
		var te *yaml.TypeError
		var oe *yaml.OverflowError
		switch {
		case errors.As(err, &te):
			e.Err, e.Fix = ErrType, "write a value of the expected type"
		case errors.As(err, &oe):
			e.Err, e.Fix = ErrType, "use a smaller number"
		case paths != nil:
			e.Err = ErrInvalid
		}
	}
	return e
}

// File returns the name of the file the configuration was loaded from ("" for Defaults).
func (c *Config) File() string {
	if c.src == nil {
		return ""
	}
	return c.src.file
}

// ErrorAt builds an *Error for a problem that a caller found at path (written as in error
// messages, e.g. "replication.policies[0].regions[1]"), located at that value's line in the
// file, or at the environment variable that set it. It lets packages that know more than this
// one (provider region lists, say) report problems in the same form. The error wraps
// ErrInvalid.
func (c *Config) ErrorAt(path, problem, fix string) *Error {
	p, err := parsePath(path)
	if err != nil {
		p = fieldPath{path}
	}
	return c.errorAt(p, ErrInvalid, problem, fix)
}

// errorAt locates p: the variable that set it, else its node in the file, else the nearest
// ancestor that is in the file (a missing key is reported at the mapping that lacks it).
func (c *Config) errorAt(p fieldPath, kind error, problem, fix string) *Error {
	e := &Error{Path: p.String(), Problem: problem, Fix: fix, Err: kind}
	if c.src == nil {
		return e
	}
	if env, ok := c.src.env[e.Path]; ok {
		e.Env = env
		return e
	}
	e.File = c.src.file
	if c.src.doc == nil {
		return e
	}
	for i := len(p); i > 0; i-- {
		if n := c.lookup(p[:i]); n != nil {
			e.Line, e.Column = nodePosition(n)
			return e
		}
	}
	return e
}

// lookup finds the node at p with goccy/go-yaml's path API, or nil.
func (c *Config) lookup(p fieldPath) (n ast.Node) {
	defer func() {
		if recover() != nil {
			n = nil
		}
	}()
	n, err := p.yamlPath().FilterFile(c.src.doc)
	if err != nil {
		return nil
	}
	return n
}
