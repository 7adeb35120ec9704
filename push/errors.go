package push

import (
	"errors"
	"fmt"
)

// Kind classifies an Error; the HTTP layer maps it to a status.
type Kind int

// The error kinds.
const (
	// Invalid input (400).
	Invalid Kind = iota + 1
	// Unauthorized: missing or wrong device identity token (401).
	Unauthorized
	// Forbidden: the caller may not do this (403).
	Forbidden
	// NotFound: no such device, publish or route (404).
	NotFound
	// Conflict: the publish cannot change state any more (409).
	Conflict
	// TooLarge: a payload over a provider's limit (413).
	TooLarge
	// RateLimited: over the app's publish rate (429).
	RateLimited
	// Disabled: push is off for the app (404 with its own code).
	Disabled
	// Unavailable: the store cannot be reached (503).
	Unavailable
)

// Error is a push error with its kind and a message meant for the caller.
type Error struct {
	Kind Kind
	Msg  string
}

// Error implements error.
func (e *Error) Error() string { return e.Msg }

func errf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned by stores for a missing record.
var ErrNotFound = errors.New("push: not found")

// AsError returns err as an *Error: an *Error as it is, ErrNotFound as NotFound, anything
// else as Unavailable (a store failure), its message kept for logs only.
func AsError(err error) *Error {
	var pe *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, ErrNotFound):
		return &Error{Kind: NotFound, Msg: "not found"}
	}
	return &Error{Kind: Unavailable, Msg: "push store unavailable: retry later"}
}
