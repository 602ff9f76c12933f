package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// fieldPath is a place in the configuration: a sequence of map keys (string) and list indexes
// (int), from the root.
type fieldPath []any

// key returns a copy of p extended by a map key. Copying matters: paths are extended in loops
// and must not share a backing array.
func (p fieldPath) key(k string) fieldPath {
	return append(p[:len(p):len(p)], k)
}

// index returns a copy of p extended by a list index.
func (p fieldPath) index(i int) fieldPath {
	return append(p[:len(p):len(p)], i)
}

// String renders p as users read it: "replication.policies[0].regions[1]". Keys that contain
// path punctuation are single-quoted, as goccy/go-yaml's path syntax does.
func (p fieldPath) String() string {
	var b strings.Builder
	for _, s := range p {
		switch s := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			if s == "" || strings.ContainsAny(s, ".[]' *") {
				b.WriteString("'" + strings.ReplaceAll(s, "'", `\'`) + "'")
			} else {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}

// yamlPath converts p to goccy/go-yaml's path type, used to find the node (and so the line)
// of a value that fails validation after decoding.
func (p fieldPath) yamlPath() *yaml.Path {
	b := (&yaml.PathBuilder{}).Root()
	for _, s := range p {
		switch s := s.(type) {
		case int:
			b = b.Index(uint(s))
		case string:
			b = b.Child(s)
		}
	}
	return b.Build()
}

// parsePath is the inverse of fieldPath.String, for callers that name a place as text
// (Config.ErrorAt).
func parsePath(s string) (fieldPath, error) {
	var p fieldPath
	i := 0
	for i < len(s) {
		switch s[i] {
		case '.':
			i++
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("config: path %q: unclosed [", s)
			}
			n, err := strconv.Atoi(s[i+1 : i+end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("config: path %q: bad index %q", s, s[i+1:i+end])
			}
			p = append(p, n)
			i += end + 1
		case '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '\''; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("config: path %q: unclosed quote", s)
			}
			p = append(p, b.String())
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				j++
			}
			p = append(p, s[i:j])
			i = j
		}
	}
	return p, nil
}

// nodePosition is where a node starts, for error messages. goccy/go-yaml gives a mapping the
// position of its first ':'; users expect the first key, so mappings are special-cased.
func nodePosition(n ast.Node) (line, col int) {
	switch v := n.(type) {
	case nil:
		return 0, 0
	case *ast.MappingNode:
		if len(v.Values) > 0 {
			return nodePosition(v.Values[0])
		}
	case *ast.MappingValueNode:
		if v.Key != nil {
			return nodePosition(v.Key)
		}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}
