package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// APIError is an error answered by the server: a non-2xx response, decoded
// from the API's error envelope.
type APIError struct {
	// StatusCode is the HTTP status (404, 422, …).
	StatusCode int
	// Code is the API's stable error code ("NOT_FOUND", "VALIDATION_ERROR",
	// …; see the ErrorCode constants). Empty when the response was not an
	// error envelope (a proxy's error page, say).
	Code string
	// Message is the server's message, for people.
	Message string
	// Details maps a field (or header, or check) to what is wrong with it.
	Details map[string]string
	// RequestID is the response's X-Request-Id; quote it when reporting a problem.
	RequestID string
	// RetryAfter is the wait the server asked for (429 responses), or 0.
	RetryAfter time.Duration
}

// Error implements error: "wabsync: 422 VALIDATION_ERROR: The request has
// invalid fields. (to: must be …) [request req_…]".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wabsync: %d", e.StatusCode)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Details) > 0 {
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(" (")
		for i, k := range keys {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(k + ": " + e.Details[k])
		}
		b.WriteString(")")
	}
	if e.RequestID != "" {
		b.WriteString(" [request " + e.RequestID + "]")
	}
	return b.String()
}

// AsAPIError returns the *APIError in err's chain, if any.
func AsAPIError(err error) (*APIError, bool) {
	var e *APIError
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// IsCode reports whether err is (or wraps) an *APIError with the given code.
func IsCode(err error, code ErrorCode) bool {
	e, ok := AsAPIError(err)
	return ok && e.Code == string(code)
}

// CheckResponse returns nil for a 2xx response and an *APIError for any other:
// the error envelope in body decoded, or, when body is not one, the status
// text and the start of the body. Use it with the generated responses:
//
//	r, err := c.ListChatsWithResponse(ctx, "me", nil)
//	if err == nil {
//		err = client.CheckResponse(r.HTTPResponse, r.Body)
//	}
func CheckResponse(resp *http.Response, body []byte) error {
	if resp == nil {
		return errors.New("wabsync: no response")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &APIError{
		StatusCode: resp.StatusCode,
		RequestID:  resp.Header.Get("X-Request-Id"),
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var env ErrorEnvelope
	if json.Unmarshal(body, &env) == nil && env.Error && env.Code != "" {
		e.Code, e.Message, e.Details = string(env.Code), env.Message, env.Details
		return e
	}
	e.Message = http.StatusText(resp.StatusCode)
	if snippet := strings.TrimSpace(string(body)); snippet != "" {
		if len(snippet) > 200 {
			snippet = snippet[:200]
			for !utf8.ValidString(snippet) {
				snippet = snippet[:len(snippet)-1]
			}
			snippet += "…"
		}
		e.Message += ": " + snippet
	}
	return e
}

// unexpected is the error for a response the operation does not document
// (a 2xx of another status or content type): an *APIError for non-2xx, a
// plain error otherwise.
func unexpected(resp *http.Response, body []byte) error {
	if err := CheckResponse(resp, body); err != nil {
		return err
	}
	return fmt.Errorf("wabsync: unexpected response %d with Content-Type %q",
		resp.StatusCode, resp.Header.Get("Content-Type"))
}
