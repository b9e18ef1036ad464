package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors a Backend wraps so the server answers with the right
// status, and that a Client's errors match with errors.Is.
var (
	// ErrNotFound means the named group, monitor or server does not exist
	// (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict means the operation cannot run in the current state, for
	// instance moving a group that is already stopping (HTTP 409).
	ErrConflict = errors.New("conflict")
)

// Error is an error answered by vigild: the HTTP status and the server's
// message. errors.Is matches it against ErrNotFound and ErrConflict by status.
type Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Message is the server's error message.
	Message string
}

// Error returns the server's message.
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("vigild answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	return e.Message
}

// Is reports whether e stands for target: ErrNotFound for a 404, ErrConflict
// for a 409.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	}
	return false
}

// statusFor maps a Backend error to the HTTP status the server answers with.
func statusFor(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}
