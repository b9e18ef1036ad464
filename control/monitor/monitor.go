// Package monitor holds Vigil's monitor kinds and the Runner that checks
// them on a schedule.
//
// A Checker answers one question once (is the NAT instance answering
// pings, does the regional endpoint accept TCP connections, does the
// script exit 0); a Runner asks it every interval, bounds each check by a
// timeout, tolerates Retry failures in a row, and reports transitions of
// its State to the recovery layer.
package monitor

import (
	"context"
	"fmt"
)

// Status is the outcome of one check.
type Status uint8

// Check outcomes.
const (
	OK Status = iota
	Warning
	Error
)

// String returns "ok", "warning" or "error".
func (s Status) String() string {
	switch s {
	case OK:
		return StateOK
	case Warning:
		return StateWarning
	case Error:
		return StateError
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Result codes, after the guides' troubleshooting tables. Exec monitors
// report the script's exit code instead.
const (
	// CodeFailed means the target refused or failed, without a timeout
	// (a TCP connection refused).
	CodeFailed = 1
	// CodeTimeout is the guides' "Timeout occurred.".
	CodeTimeout = 6
	// CodeInternal is the guides' "Internal error.".
	CodeInternal = 99
)

// Result is the outcome of one check, with a numeric code and a message
// for the operator.
type Result struct {
	Status  Status
	Code    int
	Message string
}

// Checker checks one thing once. Check must return soon after ctx is done.
type Checker interface {
	Check(ctx context.Context) Result
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) Result

// Check calls f(ctx).
func (f CheckerFunc) Check(ctx context.Context) Result { return f(ctx) }
