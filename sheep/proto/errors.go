package proto

import "errors"

// Error is a message a decoder refused or a request a node failed, with the
// Status that says what kind of failure it is. It unwraps to that Status,
// so errors.Is(err, StatusOutOfRange) works on every error of this package.
type Error struct {
	Status Status
	Reason string
}

func (e *Error) Error() string { return "sheep: " + e.Status.String() + ": " + e.Reason }

func (e *Error) Unwrap() error { return e.Status }

func errorf(s Status, reason string) error { return &Error{Status: s, Reason: reason} }

// StatusOf is the status a node replies with for err: the Status err wraps,
// StatusOK for nil, StatusInternal for an error that carries none.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return StatusInternal
}
