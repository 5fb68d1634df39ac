package wabsync

import (
	"errors"
	"fmt"
)

// Error codes of the API (API.md, "Status codes and error codes"). The HTTP
// layer maps each to its status.
const (
	EBadRequest          = "BAD_REQUEST"
	EUnauthorized        = "UNAUTHORIZED"
	EForbidden           = "FORBIDDEN"
	ENotFound            = "NOT_FOUND"
	EMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	EConflict            = "CONFLICT"
	ESessionNotConnected = "SESSION_NOT_CONNECTED"
	EIdempotencyConflict = "IDEMPOTENCY_CONFLICT"
	EPayloadTooLarge     = "PAYLOAD_TOO_LARGE"
	EUnsupportedMedia    = "UNSUPPORTED_MEDIA_TYPE"
	EValidation          = "VALIDATION_ERROR"
	ERateLimited         = "RATE_LIMITED"
	EInternal            = "INTERNAL_ERROR"
	EUnavailable         = "UNAVAILABLE"
)

// Error is an error that is safe to show to an API client: a code from the
// list above, a human-readable message and optional details (for validation
// errors, field path → what is wrong). Any other error reaching the HTTP layer
// is logged and answered as INTERNAL_ERROR without its text.
type Error struct {
	Code    string
	Message string
	Details map[string]string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("wabsync error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// EInternal otherwise; nil gives "".
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err: the message of an
// *Error, or a generic one for anything else.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ValidationErrors collects field errors and becomes one VALIDATION_ERROR.
type ValidationErrors map[string]string

// Add records msg for field unless the field already has an error.
func (v ValidationErrors) Add(field, msg string) {
	if _, ok := v[field]; !ok {
		v[field] = msg
	}
}

// Err returns nil when no field failed, else a VALIDATION_ERROR naming them.
func (v ValidationErrors) Err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Code: EValidation, Message: "The request has invalid fields.", Details: v}
}

// NotFound returns the standard NOT_FOUND error for a kind of resource.
func NotFound(what string) *Error {
	return &Error{Code: ENotFound, Message: what + " not found."}
}
