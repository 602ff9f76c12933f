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
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
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
	var errs Errors
	if len(bytes.TrimSpace(data)) > 0 {
		var decoded bool
		errs, decoded = decodeFile(cfg, filename, data)
		if !decoded {
			return nil, errs.orNil()
		}
	}
	if envErrs := applyEnv(cfg, getenv); len(envErrs) > 0 {
		return nil, append(errs, envErrs...).orNil()
	}
	if err := append(errs, cfg.problems()...).orNil(); err != nil {
		return nil, err
	}
	cfg.inherit()
	return cfg, nil
}

// decodeFile parses data and decodes it into cfg, which holds the defaults. It returns the
// problems found and whether cfg was decoded anyway: unknown and credential keys do not stop
// decoding (they are ignored), so that validation can report its problems in the same run;
// syntax and type errors do.
func decodeFile(cfg *Config, filename string, data []byte) (Errors, bool) {
	var doc *ast.File
	if err := safely(filename, func() (err error) {
		doc, err = parser.ParseBytes(data, 0)
		return err
	}); err != nil {
		return Errors{yamlError(filename, err, nil)}, false
	}
	cfg.src.doc = doc
	// Count documents with the lexer, not the parser: goccy/go-yaml v1.19 drops everything
	// after an empty document that is followed by another "---", which would silently ignore
	// the configuration.
	starts := documentStarts(data)
	if len(starts) > 1 {
		return Errors{{File: filename, Line: starts[1].Line, Column: starts[1].Column, Problem: "the file holds more than one YAML document (the second starts here)", Fix: `keep one document: remove the "---" separator and merge the settings`, Err: ErrSyntax}}, false
	}
	if len(starts) == 0 {
		return nil, true // Only comments and document markers.
	}
	body := firstBody(doc)
	if body == nil {
		// Parse again with the lines above the document blanked out, which keeps every line
		// and column number as the user sees them.
		if err := safely(filename, func() (err error) {
			doc, err = parser.ParseBytes(blankLinesBefore(data, starts[0].Line), 0)
			return err
		}); err == nil {
			cfg.src.doc = doc
			body = firstBody(doc)
		}
	}
	if body == nil {
		return Errors{{File: filename, Line: starts[0].Line, Column: starts[0].Column, Problem: "the YAML library could not read the document that starts here", Fix: `remove the "---" lines above it`, Err: ErrSyntax}}, false
	}
	c := newChecker(filename)
	c.collectAnchors(body, 0)
	if c.expandedSize(body, 0, map[string]bool{}, map[string]int{}) > maxExpandedNodes {
		line, col := nodePosition(body)
		return Errors{{File: filename, Line: line, Column: col, Problem: fmt.Sprintf("the document's aliases expand to more than %d values", maxExpandedNodes), Fix: "use fewer nested aliases (*name); a configuration needs few if any", Err: ErrInvalid}}, false
	}
	c.credentials(body, nil, 0)
	c.check(body, configType, nil, 0)
	for _, e := range c.errs {
		if !errors.Is(e, ErrUnknownKey) && !errors.Is(e, ErrCredentials) {
			return c.errs, false
		}
	}
	// Duplicate keys are rejected by the parser above; allowing them here only lets a key
	// written in a mapping override one merged in with "<<", as YAML intends.
	opts := []yaml.DecodeOption{yaml.AllowDuplicateMapKey()}
	if len(c.errs) == 0 {
		opts = append(opts, yaml.Strict()) // Else the unknown keys are reported; decode the rest.
	}
	// Decode the checked node itself, not data again: the document checked may not be the
	// file's first (leading empty documents are skipped).
	if err := safely(filename, func() error { return yaml.NodeToValue(body, cfg, opts...) }); err != nil {
		return append(c.errs, yamlError(filename, err, c.paths)), false
	}
	return c.errs, true
}

// safely runs a goccy/go-yaml call and turns a panic into an error: the library is a large
// hand-written parser, and a crash on hostile input must surface as a configuration error
// rather than take the process down at start-up.
func safely(filename string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML library failed on %s: %v", filename, r)
		}
	}()
	return f()
}

// documentStarts returns the position of the first content token of each document in data,
// skipping documents that hold only comments.
func documentStarts(data []byte) []*token.Position {
	var starts []*token.Position
	inContent := false
	for _, tk := range lexer.Tokenize(string(data)) {
		switch tk.Type {
		case token.DocumentHeaderType, token.DocumentEndType:
			inContent = false
		case token.CommentType:
		default:
			if !inContent && tk.Position != nil {
				starts = append(starts, tk.Position)
			}
			inContent = true
		}
	}
	return starts
}

// firstBody returns the first document body that holds something, or nil.
func firstBody(doc *ast.File) ast.Node {
	for _, d := range doc.Docs {
		if d != nil && !isEmpty(d.Body) {
			return d.Body
		}
	}
	return nil
}

// blankLinesBefore returns a copy of data with every line before line (1-based) emptied.
func blankLinesBefore(data []byte, line int) []byte {
	out := make([]byte, 0, len(data))
	for i := 1; i < line; i++ {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			break
		}
		out = append(out, '\n')
		data = data[nl+1:]
	}
	return append(out, data...)
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
	if n := c.lookup(p); n != nil {
		e.Line, e.Column = nodePosition(n)
		return e
	}
	// The value is not in the file (a required key left out): point at the nearest ancestor
	// that is, at its key when it has one ("tls:"), else at its first line (a list item).
	for i := len(p) - 1; i > 0; i-- {
		n := c.lookup(p[:i])
		if n == nil {
			continue
		}
		if key, ok := p[i-1].(string); ok {
			if k := keyNode(c.lookup(p[:i-1]), key); k != nil {
				n = k
			}
		}
		e.Line, e.Column = nodePosition(n)
		return e
	}
	return e
}

// keyNode finds the key node of key in a mapping, or nil.
func keyNode(mapping ast.Node, key string) ast.Node {
	var values []*ast.MappingValueNode
	switch m := mapping.(type) {
	case *ast.MappingNode:
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	}
	for _, mv := range values {
		if k, ok := scalarText(mv.Key); ok && k == key {
			return mv.Key
		}
	}
	return nil
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
