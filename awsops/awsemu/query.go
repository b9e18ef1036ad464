package awsemu

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxListIndex bounds the N of "Name.N" parameters.
const maxListIndex = 1000

// query is a decoded Query API request: parameter name → value.
type query map[string]string

// parseQuery decodes a Query API form, as EC2 and STS receive it in a POST
// body (or a GET's URL query).
func parseQuery(raw string) (query, *apiError) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, newError(http.StatusBadRequest, "MalformedQueryString", "The query string is malformed: %s", err.Error())
	}
	q := make(query, len(vals))
	for k, vs := range vals {
		if k == "" {
			return nil, newError(http.StatusBadRequest, "MalformedQueryString", "The query string has a parameter without a name")
		}
		if len(vs) > 1 && slices.ContainsFunc(vs[1:], func(v string) bool { return v != vs[0] }) {
			return nil, errInvalidParameterValue("The parameter %s is given more than once with different values", k)
		}
		q[k] = vs[0]
	}
	return q, nil
}

// keyPattern replaces the list indexes of a parameter name by '#'
// ("Filter.1.Value.2" → "Filter.#.Value.#").
func keyPattern(k string) (string, *apiError) {
	segs := strings.Split(k, ".")
	for i, seg := range segs {
		if seg == "" {
			return "", newError(http.StatusBadRequest, "UnknownParameter", "The parameter %s is not recognized", k)
		}
		if seg[0] < '0' || seg[0] > '9' {
			continue
		}
		n, err := strconv.Atoi(seg)
		if err != nil || n < 1 || n > maxListIndex || seg[0] == '0' {
			return "", errInvalidParameterValue("The parameter %s has an invalid list index", k)
		}
		segs[i] = "#"
	}
	return strings.Join(segs, "."), nil
}

// check fails with UnknownParameter on any parameter not in allowed
// (patterns as keyPattern returns them). Action, Version and DryRun are
// always allowed.
func (q query) check(allowed []string) *apiError {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable answer when several are wrong
	for _, k := range keys {
		p, err := keyPattern(k)
		if err != nil {
			return err
		}
		switch p {
		case "Action", "Version", "DryRun":
			continue
		}
		if !slices.Contains(allowed, p) {
			return newError(http.StatusBadRequest, "UnknownParameter", "The parameter %s is not recognized", k)
		}
	}
	return nil
}

// indexedValue is one parameter prefix.N[.rest].
type indexedValue struct {
	n    int
	rest string // what follows prefix.N, "" for prefix.N itself
	val  string
}

// indexed returns the parameters prefix.N... in N's order.
func (q query) indexed(prefix string) []indexedValue {
	var out []indexedValue
	for k, v := range q {
		tail, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, rest, _ := strings.Cut(tail, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || num[0] == '0' {
			continue
		}
		out = append(out, indexedValue{n: n, rest: rest, val: v})
	}
	slices.SortFunc(out, func(a, b indexedValue) int {
		return cmp.Or(cmp.Compare(a.n, b.n), strings.Compare(a.rest, b.rest))
	})
	return out
}

// list returns the values of name.1, name.2, ... in index order.
func (q query) list(name string) []string {
	var out []string
	for _, iv := range q.indexed(name) {
		if iv.rest == "" {
			out = append(out, iv.val)
		}
	}
	return out
}

// filter is one EC2 filter: a name and the values any of which may match.
type filter struct {
	Name   string
	Values []string
}

// filters decodes Filter.N.Name and Filter.N.Value.M.
func (q query) filters() ([]filter, *apiError) {
	byIndex := map[int]*filter{}
	var order []int
	type val struct {
		m int
		v string
	}
	values := map[int][]val{}
	for _, iv := range q.indexed("Filter") {
		f := byIndex[iv.n]
		if f == nil {
			f = &filter{}
			byIndex[iv.n] = f
			order = append(order, iv.n)
		}
		switch {
		case iv.rest == "Name":
			f.Name = iv.val
		case strings.HasPrefix(iv.rest, "Value."):
			m, err := strconv.Atoi(strings.TrimPrefix(iv.rest, "Value."))
			if err != nil || m < 1 {
				return nil, newError(http.StatusBadRequest, "UnknownParameter", "The parameter Filter.%d.%s is not recognized", iv.n, iv.rest)
			}
			values[iv.n] = append(values[iv.n], val{m, iv.val})
		default:
			return nil, newError(http.StatusBadRequest, "UnknownParameter", "The parameter Filter.%d.%s is not recognized", iv.n, iv.rest)
		}
	}
	out := make([]filter, 0, len(order))
	for _, n := range order {
		f := byIndex[n]
		if f.Name == "" {
			return nil, errInvalidParameterValue("The filter 'null' is invalid")
		}
		vs := values[n]
		slices.SortFunc(vs, func(a, b val) int { return cmp.Compare(a.m, b.m) })
		for _, v := range vs {
			f.Values = append(f.Values, v.v)
		}
		if len(f.Values) == 0 {
			return nil, errInvalidParameterValue("The filter '%s' requires at least one value", f.Name)
		}
		out = append(out, *f)
	}
	return out, nil
}

// boolean returns a boolean parameter; absent is false.
func (q query) boolean(name string) (bool, *apiError) {
	switch v := q[name]; strings.ToLower(v) {
	case "":
		return false, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, errInvalidParameterValue("Value (%s) for parameter %s is invalid. Expected: 'true' or 'false'.", v, lowerFirst(name))
	}
}

// required returns a parameter that must be present and not empty.
func (q query) required(name string) (string, *apiError) {
	v := q[name]
	if v == "" {
		return "", errMissingParameter(lowerFirst(name))
	}
	return v, nil
}

// lowerFirst returns s with its first letter in lower case, as EC2 names
// parameters in its messages (routeTableId).
func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// filterDefs maps the filter names an action supports to the values of an
// item they compare with.
type filterDefs[T any] map[string]func(T) []string

// applyFilters keeps the items matching every filter; a filter matches
// when any of its values (with * and ? wildcards) equals any of the item's.
func applyFilters[T any](items []T, fs []filter, defs filterDefs[T]) ([]T, *apiError) {
	for _, f := range fs {
		if defs[f.Name] == nil {
			return nil, errInvalidParameterValue("The filter '%s' is invalid", f.Name)
		}
	}
	var out []T
	for _, it := range items {
		ok := true
		for _, f := range fs {
			if !anyMatch(f.Values, defs[f.Name](it)) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

func anyMatch(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if globMatch(p, v) {
				return true
			}
		}
	}
	return false
}

// globMatch reports whether s matches pattern, where '*' matches any run of
// characters, '?' any one character and '\' escapes the next one.
func globMatch(pattern, s string) bool {
	var starP, starS = -1, -1
	p, i := 0, 0
	for i < len(s) {
		if p < len(pattern) {
			c, w := utf8.DecodeRuneInString(pattern[p:])
			switch c {
			case '*':
				starP, starS = p+w, i
				p += w
				continue
			case '?':
				_, sw := utf8.DecodeRuneInString(s[i:])
				p += w
				i += sw
				continue
			case '\\':
				if p+w < len(pattern) {
					c, w2 := utf8.DecodeRuneInString(pattern[p+w:])
					sc, sw := utf8.DecodeRuneInString(s[i:])
					if c == sc {
						p += w + w2
						i += sw
						continue
					}
				}
			default:
				sc, sw := utf8.DecodeRuneInString(s[i:])
				if c == sc {
					p += w
					i += sw
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		_, sw := utf8.DecodeRuneInString(s[starS:])
		starS += sw
		p, i = starP, starS
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
