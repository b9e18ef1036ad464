package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxVisits bounds the number of YAML nodes the decoder visits, so that a
// small file whose aliases expand into a huge tree cannot exhaust memory.
const maxVisits = 1 << 18

// decoder walks a yaml.Node tree into the configuration structs, strictly:
// it knows every key, checks every type and collects every problem. It
// remembers the line of every field path it saw, for the validator's errors.
type decoder struct {
	file string
	errs ErrorList
	// lines maps a field path to the line of its key (or sequence item).
	lines map[string]int
	// null holds the paths that are present with a null value.
	null map[string]bool
	// bad holds the paths whose value could not be decoded; the validator
	// does not pile a second error on them.
	bad map[string]bool
	// pending holds the per-server values, merged once defaults are in.
	pending []override
	visits  int
	aborted bool
}

// override is one "servers: {name: {...}}" block of a resource or monitor.
type override struct {
	path    string // the block's path: groups[0].resources[1].servers.node2
	server  string
	entries []entry
	res     *Resource
	mon     *Monitor
}

// entry is one key/value pair of a mapping.
type entry struct {
	key  string
	k, v *yaml.Node
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:  file,
		lines: map[string]int{"": 1},
		null:  map[string]bool{},
		bad:   map[string]bool{},
	}
}

// errorAt records a problem at an explicit line.
func (d *decoder) errorAt(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// errorf records a problem about path, on the line of path or of its nearest
// ancestor the file mentions.
func (d *decoder) errorf(path, format string, args ...any) {
	d.errorAt(d.line(path), path, format, args...)
}

// fail records a problem about a value that could not be decoded.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.bad[path] = true
	d.errorAt(n.Line, path, format, args...)
}

// line returns the line of path, or of its nearest recorded ancestor.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		if path == "" {
			return 1
		}
		path = parentPath(path)
	}
}

// has reports whether the file sets path to a non-null value.
func (d *decoder) has(path string) bool {
	_, ok := d.lines[path]
	return ok && !d.null[path]
}

// mentions reports whether the file mentions path at all, even as null.
func (d *decoder) mentions(path string) bool {
	_, ok := d.lines[path]
	return ok
}

// parentPath strips the last element of a field path.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// childPath appends a mapping key to a field path, quoting keys that would
// be ambiguous.
func childPath(parent, key string) string {
	if !plainKey.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath appends a sequence index to a field path.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses data into its single document's root node. It returns
// nil, nil for a file without any document.
func (d *decoder) parseYAML(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorAt(1, "", "empty configuration")
			return nil
		}
		d.syntaxError(data, err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.errorAt(extra.Line, "", "syntax error: more than one YAML document; a configuration is one document")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(data, err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.errorAt(1, "", "empty configuration")
		return nil
	}
	return doc.Content[0]
}

// syntaxError records a YAML parser error. The parser's line is where the
// construct it was parsing started, or nothing on the first line; the line
// after the longest prefix of the file that parses is more useful.
func (d *decoder) syntaxError(data []byte, err error) {
	msg := err.Error()
	line := 1
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	d.errorAt(errorLine(data, line), "", "syntax error: %s", msg)
}

// maxRefineLines bounds the size of a file whose syntax error line is
// searched for by parsing its prefixes.
const maxRefineLines = 1000

// errorLine returns the line after the longest prefix of data, in whole
// lines, that is valid YAML: the line the problem shows on. For files too
// big to search, it returns fallback.
func errorLine(data []byte, fallback int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxRefineLines {
		return fallback
	}
	for k := len(lines) - 1; k > 0; k-- {
		if validYAML(bytes.Join(lines[:k], nil)) {
			return k + 1
		}
	}
	return 1
}

// validYAML reports whether every document in data parses.
func validYAML(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// resolve follows an alias to its anchored node and counts the visit.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	d.visits++
	if d.visits > maxVisits {
		if !d.aborted {
			d.errorAt(n.Line, "", "document too large: aliases expand to more than %d nodes", maxVisits)
		}
		d.aborted = true
		return nil
	}
	return n
}

var (
	resourceType = reflect.TypeFor[Resource]()
	monitorType  = reflect.TypeFor[Monitor]()
)

// value decodes n into v, the field at path.
func (d *decoder) value(n *yaml.Node, path string, v reflect.Value) {
	if n = d.resolve(n); n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		d.null[path] = true
		return
	}
	switch v.Type() {
	case resourceType:
		d.resource(n, path, v.Addr().Interface().(*Resource))
		return
	case monitorType:
		d.monitor(n, path, v.Addr().Interface().(*Monitor))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.Type().Elem().Kind() != reflect.Struct {
			d.fail(n, path, "internal error: cannot decode into %s", v.Type())
			return
		}
		p := reflect.New(v.Type().Elem())
		d.value(n, path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		entries, ok := d.entries(n, path)
		if !ok {
			return
		}
		fields := fieldsOf(v.Type())
		for _, e := range entries {
			p := childPath(path, e.key)
			if i, ok := fields[e.key]; ok {
				d.value(e.v, p, v.Field(i))
				continue
			}
			d.unknownKey(e.k, p, e.key, keysOf(fields))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			p := indexPath(path, i)
			d.lines[p] = item.Line
			d.value(item, p, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		entries, ok := d.entries(n, path)
		if !ok {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(entries))
		for _, e := range entries {
			ev := reflect.New(v.Type().Elem()).Elem()
			d.value(e.v, childPath(path, e.key), ev)
			m.SetMapIndex(reflect.ValueOf(e.key), ev)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!binary" {
			d.fail(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		d.fail(n, path, "internal error: cannot decode into %s", v.Type())
	}
}

// entries returns the pairs of a mapping node, recording their lines and
// reporting duplicate or malformed keys.
func (d *decoder) entries(n *yaml.Node, path string) ([]entry, bool) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	out := make([]entry, 0, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return nil, false
		}
		switch {
		case k.ShortTag() == "!!merge":
			d.bad[path] = true
			d.errorAt(k.Line, path, "merge keys (<<) are not supported")
			continue
		case k.Kind != yaml.ScalarNode:
			d.errorAt(k.Line, path, "expected a key, got %s", describe(k))
			continue
		case k.ShortTag() == "!!null" || k.Value == "":
			d.errorAt(k.Line, path, "empty key")
			continue
		}
		p := childPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorAt(k.Line, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		d.lines[p] = k.Line
		out = append(out, entry{key: k.Value, k: k, v: n.Content[i+1]})
	}
	return out, true
}

// unknownKey reports a key the schema does not know, with a suggestion.
func (d *decoder) unknownKey(k *yaml.Node, path, key string, known []string) {
	d.bad[path] = true
	if s := suggest(key, known); s != "" {
		d.errorAt(k.Line, path, "unknown key (did you mean %s?)", s)
		return
	}
	d.errorAt(k.Line, path, "unknown key")
}

// describe names a node's YAML type and value for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:37] + "..."
		}
		switch n.ShortTag() {
		case "!!int":
			return "the integer " + v
		case "!!float":
			return "the number " + v
		case "!!bool":
			return "the boolean " + v
		case "!!null":
			return "null"
		default:
			return "the string " + strconv.Quote(v)
		}
	}
	return "an unsupported node"
}

// fieldsOf maps the YAML keys of a struct type to its field indexes,
// leaving out unexported fields and fields tagged "-".
func fieldsOf(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

func keysOf(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the known key closest to key, if it is close enough to be
// a typo.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		dist := editDistance(key, k)
		if len(key) >= 4 && (strings.HasPrefix(k, key) || strings.HasPrefix(key, k)) {
			dist = min(dist, 1)
		}
		if dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
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
