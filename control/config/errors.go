package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem found in a configuration file.
type Error struct {
	// File is the configuration file's path, as given to Parse or Load.
	File string
	// Line is the 1-based line the problem is on; 0 when unknown.
	Line int
	// Path is the field path, e.g. "groups[0].resources[1].depends_on[0]";
	// empty for problems that concern the whole file, such as syntax errors.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Error formats the problem as "file:line: path: msg", leaving out the parts
// that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a configuration file, sorted by line.
// Parse and Load return it as their error, so that a caller can list all the
// problems at once.
type ErrorList []*Error

// Error joins the problems, one a line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the problems as errors, for errors.As and errors.Is.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sorted returns the list sorted by line, keeping the order in which problems
// were found on the same line, without repeated problems (an alias can make
// the decoder visit the same node twice).
func (l ErrorList) sorted() ErrorList {
	sort.SliceStable(l, func(i, j int) bool { return l[i].Line < l[j].Line })
	out := l[:0]
	seen := make(map[Error]bool, len(l))
	for _, e := range l {
		if seen[*e] {
			continue
		}
		seen[*e] = true
		out = append(out, e)
	}
	return out
}
