package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// checker walks the YAML syntax tree against the Config type before anything is decoded. It
// exists because the decoder stops at the first problem and its messages speak Go ("cannot
// unmarshal uint64 into Go struct field"), while a user wants every unknown key, credential
// and wrong-shaped value at once, each with its line and a fix.
type checker struct {
	file    string
	errs    Errors
	anchors map[string]ast.Node
	// visited remembers which anchors were already checked as which type, so an alias used a
	// thousand times (or nested aliases, the "billion laughs" file) is checked once.
	visited map[visitKey]bool
	// paths maps a node's position to its place in the configuration, to give decoder errors
	// (which know only a position) a path.
	paths map[[2]int]fieldPath
}

type visitKey struct {
	anchor string
	typ    reflect.Type
}

var (
	durationType = reflect.TypeFor[Duration]()
	configType   = reflect.TypeFor[Config]()
)

func newChecker(file string) *checker {
	return &checker{
		file:    file,
		anchors: map[string]ast.Node{},
		visited: map[visitKey]bool{},
		paths:   map[[2]int]fieldPath{},
	}
}

// add records a problem at node n.
func (c *checker) add(n ast.Node, p fieldPath, kind error, problem, fix string) {
	line, col := nodePosition(n)
	c.errs = append(c.errs, &Error{File: c.file, Line: line, Column: col, Path: p.String(), Problem: problem, Fix: fix, Err: kind})
}

// collectAnchors indexes every anchor in the document, wherever it is (even under a key the
// schema does not know), so that aliases can be followed.
func (c *checker) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		if v.Name != nil {
			c.anchors[v.Name.GetToken().Value] = v.Value
		}
		c.collectAnchors(v.Value, depth+1)
	case *ast.TagNode:
		c.collectAnchors(v.Value, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			c.collectAnchors(mv, depth+1)
		}
	case *ast.MappingValueNode:
		c.collectAnchors(v.Key, depth+1)
		c.collectAnchors(v.Value, depth+1)
	case *ast.SequenceNode:
		for _, e := range v.Values {
			c.collectAnchors(e, depth+1)
		}
	}
}

// maxDepth bounds recursion on hostile input; a real configuration is a few levels deep.
const maxDepth = 64

// credentials reports every credential-like key anywhere in the document. It runs over the
// whole tree, not just known keys: a secret is a secret even under a misspelt section.
func (c *checker) credentials(n ast.Node, p fieldPath, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	switch v := n.(type) {
	case *ast.AnchorNode:
		c.credentials(v.Value, p, depth+1)
	case *ast.TagNode:
		c.credentials(v.Value, p, depth+1)
	case *ast.MappingNode:
		for _, mv := range v.Values {
			c.credentials(mv, p, depth+1)
		}
	case *ast.MappingValueNode:
		key, ok := scalarText(v.Key)
		if ok && isCredentialKey(key) {
			// Never quote the value: it is the secret.
			c.add(v.Key, p.key(key), ErrCredentials,
				fmt.Sprintf("key %q looks like a credential; imagerelay never reads credentials from its configuration file", key),
				credentialFix(p))
			return
		}
		c.credentials(v.Value, p.key(key), depth+1)
	case *ast.SequenceNode:
		for i, e := range v.Values {
			c.credentials(e, p.index(i), depth+1)
		}
	}
}

// credentialEnv names each cloud's credential variables.
var credentialEnv = map[string]string{
	"tencent": "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY",
	"alibaba": "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
	"huawei":  "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK",
}

// credentialFix tells where the credentials go instead: the variables of the cloud whose
// section holds the key, or of every cloud when the key is elsewhere.
func credentialFix(p fieldPath) string {
	const why = " (credentials come only from the cloud's environment variables, or from the function's role in the cloud); rotate the secret if this file was shared"
	if len(p) >= 2 && p[0] == "providers" {
		if name, ok := p[1].(string); ok {
			if vars, ok := credentialEnv[name]; ok {
				return "delete it and export " + vars + " instead" + why
			}
		}
	}
	return "delete it and export the cloud's variables instead: TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY (Tencent), " +
		"ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET (Alibaba), HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (Huawei)" + why
}

var (
	credentialExact    = []string{"ak", "sk", "pwd", "secretid", "accesskeyid", "credential", "credentials"}
	credentialSuffixes = []string{"secret", "secretkey", "password", "passwd", "token", "accesskey", "privatekey", "apikey"}
)

// isCredentialKey recognises the usual spellings of credential keys (secretKey, SecretId,
// access_key_secret, sk, password, securityToken, ...) regardless of case and separators.
func isCredentialKey(key string) bool {
	k := strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return r
	}, strings.ToLower(key))
	if slices.Contains(credentialExact, k) {
		return true
	}
	for _, s := range credentialSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// resolve looks through anchors, tags and aliases to the node that holds the value. alias is
// the alias name followed, if any.
func (c *checker) resolve(n ast.Node) (node ast.Node, alias string) {
	for range maxDepth {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil {
				return nil, ""
			}
			alias = v.Value.GetToken().Value
			target, ok := c.anchors[alias]
			if !ok {
				return nil, alias
			}
			n = target
		default:
			return n, alias
		}
	}
	return nil, alias
}

// check verifies that n can be decoded into a value of type t.
func (c *checker) check(n ast.Node, t reflect.Type, p fieldPath, depth int) {
	if depth > maxDepth {
		c.add(n, p, ErrType, "the document nests too deeply", "flatten the value")
		return
	}
	orig := n
	n, alias := c.resolve(n)
	if alias != "" {
		k := visitKey{alias, t}
		if c.visited[k] {
			return
		}
		c.visited[k] = true
	}
	if n == nil {
		if alias != "" {
			c.add(orig, p, ErrSyntax, fmt.Sprintf("alias *%s refers to no anchor", alias), fmt.Sprintf("define &%s before this alias", alias))
		}
		return
	}
	if line, col := nodePosition(n); line > 0 {
		if _, ok := c.paths[[2]int{line, col}]; !ok {
			c.paths[[2]int{line, col}] = p
		}
	}
	if _, null := n.(*ast.NullNode); null {
		return // An empty value keeps the default.
	}
	if t == durationType {
		c.duration(n, p)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		c.check(n, t.Elem(), p, depth+1)
	case reflect.Struct:
		c.structure(n, t, p, depth)
	case reflect.Map:
		c.mapping(n, t, p, depth)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			c.add(n, p, ErrType, fmt.Sprintf("expected a list, found %s", describeNode(n)),
				"write a list, either [a, b] or one \"- item\" per line")
			return
		}
		for i, e := range seq.Values {
			c.check(e, t.Elem(), p.index(i), depth+1)
		}
	case reflect.String:
		if _, ok := scalarText(n); !ok {
			c.add(n, p, ErrType, fmt.Sprintf("expected text, found %s", describeNode(n)), "write a single value, quoted if it contains special characters")
		}
	case reflect.Int:
		c.integer(n, p)
	case reflect.Float64:
		c.float(n, p)
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); !ok {
			c.add(n, p, ErrType, fmt.Sprintf("expected true or false, found %s", describeNode(n)), "write true or false, without quotes")
		}
	}
}

func (c *checker) duration(n ast.Node, p fieldPath) {
	s, ok := scalarText(n)
	if !ok {
		c.add(n, p, ErrType, fmt.Sprintf("expected a duration, found %s", describeNode(n)), `write a duration with a unit, e.g. "30s", "5m" or "1h30m"`)
		return
	}
	if _, err := parseDuration(s); err != nil {
		fix := `write a duration with a unit, e.g. "30s", "5m" or "1h30m"`
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			fix = fmt.Sprintf(`add a unit: "%ss" for seconds, "%sm" for minutes`, s, s)
		}
		c.add(n, p, ErrType, err.Error(), fix)
	}
}

func (c *checker) integer(n ast.Node, p fieldPath) {
	switch v := n.(type) {
	case *ast.IntegerNode:
		return
	case *ast.FloatNode:
		if v.Value == math.Trunc(v.Value) && math.Abs(v.Value) < 1<<53 {
			return
		}
	case *ast.StringNode:
		if _, err := strconv.Atoi(strings.TrimSpace(v.Value)); err == nil {
			return
		}
	}
	c.add(n, p, ErrType, fmt.Sprintf("expected a whole number, found %s", describeNode(n)), "write a whole number such as 3, without quotes")
}

func (c *checker) float(n ast.Node, p fieldPath) {
	switch v := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return // Validation rejects infinities and NaN with a better message.
	case *ast.StringNode:
		if _, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64); err == nil {
			return
		}
	}
	c.add(n, p, ErrType, fmt.Sprintf("expected a number, found %s", describeNode(n)), "write a number such as 10 or 2.5, without quotes")
}

// structure checks a mapping against a struct's yaml fields.
func (c *checker) structure(n ast.Node, t reflect.Type, p fieldPath, depth int) {
	pairs, ok := c.pairs(n, p, depth)
	if !ok {
		c.add(n, p, ErrType, fmt.Sprintf("expected a mapping with keys such as %s, found %s", strings.Join(firstN(yamlKeys(t), 4), ", "), describeNode(n)),
			"write one \"key: value\" per line, indented under "+lastKey(p))
		return
	}
	for _, kv := range pairs {
		f, ok := fieldByKey(t, kv.key)
		if !ok {
			c.add(kv.node.Key, p.key(kv.key), ErrUnknownKey, fmt.Sprintf("unknown key %q", kv.key), suggestKey(kv.key, yamlKeys(t)))
			continue
		}
		c.check(kv.node.Value, f.Type, p.key(kv.key), depth+1)
	}
}

// mapping checks a YAML mapping against a Go map type (string keys).
func (c *checker) mapping(n ast.Node, t reflect.Type, p fieldPath, depth int) {
	pairs, ok := c.pairs(n, p, depth)
	if !ok {
		c.add(n, p, ErrType, fmt.Sprintf("expected a mapping of key: value pairs, found %s", describeNode(n)), "write one \"key: value\" per line, or {key: value}")
		return
	}
	for _, kv := range pairs {
		c.check(kv.node.Value, t.Elem(), p.key(kv.key), depth+1)
	}
}

// pair is one key of a mapping, with its text.
type pair struct {
	key  string
	node *ast.MappingValueNode
}

// pairs returns the keys of a mapping that the schema walk must check: keys written twice
// are reported here, credential keys are left to the credentials pass, and merge keys
// ("<<: *base") are expanded with YAML's rule that a key written in the mapping wins over a
// merged one. It returns false when n is not a mapping.
func (c *checker) pairs(n ast.Node, p fieldPath, depth int) ([]pair, bool) {
	explicit, merged, ok := c.mappingValues(n, p, depth)
	if !ok {
		return nil, false
	}
	seen := map[string]bool{}
	var out []pair
	for i, list := range [][]*ast.MappingValueNode{explicit, merged} {
		fromMerge := i == 1
		for _, mv := range list {
			key, ok := scalarText(mv.Key)
			if !ok {
				c.add(mv.Key, p, ErrType, fmt.Sprintf("a key must be a single value, found %s", describeNode(mv.Key)), "use a plain word as the key")
				continue
			}
			if isCredentialKey(key) {
				continue // Reported by the credentials pass.
			}
			if seen[key] {
				if !fromMerge {
					c.add(mv.Key, p.key(key), ErrInvalid, fmt.Sprintf("key %q appears twice in the same mapping", key), "keep one of them")
				}
				continue
			}
			seen[key] = true
			out = append(out, pair{key, mv})
		}
	}
	return out, true
}

// mappingValues returns the key/value pairs written in a mapping and, separately, those it
// merges in through merge keys, or false when n is not a mapping.
func (c *checker) mappingValues(n ast.Node, p fieldPath, depth int) (explicit, merged []*ast.MappingValueNode, ok bool) {
	var raw []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		raw = v.Values
	case *ast.MappingValueNode:
		raw = []*ast.MappingValueNode{v}
	default:
		return nil, nil, false
	}
	var before []string // explicit keys written before the current merge key
	for _, mv := range raw {
		if _, merge := mv.Key.(*ast.MergeKeyNode); !merge {
			explicit = append(explicit, mv)
			if k, ok := scalarText(mv.Key); ok {
				before = append(before, k)
			}
			continue
		}
		if depth > maxDepth {
			continue
		}
		start := len(merged)
		var sources []ast.Node
		if seq, ok := mv.Value.(*ast.SequenceNode); ok {
			sources = seq.Values
		} else {
			sources = []ast.Node{mv.Value}
		}
		for _, s := range sources {
			target, _ := c.resolve(s)
			if e, m, ok := c.mappingValues(target, p, depth+1); ok {
				merged = append(merged, e...)
				merged = append(merged, m...)
			}
		}
		// The decoder lets the later of two equal keys win, while YAML says a key written in
		// the mapping beats a merged one; the two agree only when the merge comes first.
		for _, m := range merged[start:] {
			if k, ok := scalarText(m.Key); ok && slices.Contains(before, k) {
				c.add(mv.Key, p, ErrInvalid, fmt.Sprintf("merge key overrides %q, which is written before it", k), "move the \"<<\" line above the keys that override it")
				break
			}
		}
	}
	return explicit, merged, true
}

// scalarText returns the text of a scalar node and false for anything else.
func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value == nil {
			return "", true
		}
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, true
		}
	case *ast.TagNode:
		return scalarText(v.Value)
	}
	return "", false
}

// describeNode names what was found, for "expected X, found Y" messages. Scalars are quoted
// so the user can spot the offending value; credential values never reach here because
// credential keys are not descended into.
func describeNode(n ast.Node) string {
	switch v := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.BoolNode:
		return fmt.Sprintf("the boolean %v", v.Value)
	case *ast.IntegerNode:
		return "the number " + v.GetToken().Value
	case *ast.FloatNode:
		return "the number " + v.GetToken().Value
	}
	if s, ok := scalarText(n); ok {
		return strconv.Quote(s)
	}
	return "a " + strings.ToLower(n.Type().String())
}

// fieldByKey finds the struct field whose yaml tag name is key.
func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlName is a field's key in YAML; "" for fields not in YAML.
func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// yamlKeys lists a struct's YAML keys in declaration order.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := yamlName(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// suggestKey proposes the known key closest to a misspelt one.
func suggestKey(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		d := editDistance(strings.ToLower(key), strings.ToLower(k))
		if d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q? (keys here: %s)", best, strings.Join(known, ", "))
	}
	return "remove it or use one of " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance, for typo suggestions on short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func lastKey(p fieldPath) string {
	for i := len(p) - 1; i >= 0; i-- {
		if k, ok := p[i].(string); ok {
			return k
		}
	}
	return "the top level"
}

// maxExpandedNodes bounds the size of the document once aliases are expanded. The decoder
// copies an alias's value at every use, so nested aliases (the "billion laughs" file) would
// otherwise make a few lines of YAML take unbounded time and memory.
const maxExpandedNodes = 100_000

// expandedSize counts the nodes of n with every alias expanded, saturating at
// maxExpandedNodes+1. An alias that refers to an enclosing anchor counts as too large.
func (c *checker) expandedSize(n ast.Node, depth int, active map[string]bool, memo map[string]int) int {
	if n == nil {
		return 0
	}
	if depth > maxDepth {
		return maxExpandedNodes + 1
	}
	sum := func(nodes ...ast.Node) int {
		total := 1
		for _, x := range nodes {
			total += c.expandedSize(x, depth+1, active, memo)
			if total > maxExpandedNodes {
				return maxExpandedNodes + 1
			}
		}
		return total
	}
	switch v := n.(type) {
	case *ast.AliasNode:
		if v.Value == nil {
			return 1
		}
		name := v.Value.GetToken().Value
		if size, ok := memo[name]; ok {
			return size
		}
		if active[name] {
			return maxExpandedNodes + 1
		}
		target, ok := c.anchors[name]
		if !ok {
			return 1
		}
		active[name] = true
		size := c.expandedSize(target, depth+1, active, memo)
		delete(active, name)
		memo[name] = size
		return size
	case *ast.AnchorNode:
		return sum(v.Value)
	case *ast.TagNode:
		return sum(v.Value)
	case *ast.MappingNode:
		nodes := make([]ast.Node, len(v.Values))
		for i, mv := range v.Values {
			nodes[i] = mv
		}
		return sum(nodes...)
	case *ast.MappingValueNode:
		return sum(v.Key, v.Value)
	case *ast.SequenceNode:
		return sum(v.Values...)
	}
	return 1
}
