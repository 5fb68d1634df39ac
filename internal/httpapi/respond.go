package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// successEnvelope is the body of every 2xx JSON response.
type successEnvelope struct {
	Success bool   `json:"success"`
	Message string `json:"message"`
	Data    any    `json:"data"`
}

// errorEnvelope is the body of every 4xx and 5xx response.
type errorEnvelope struct {
	Error   bool              `json:"error"`
	Message string            `json:"message"`
	Code    string            `json:"code"`
	Details map[string]string `json:"details"`
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeJSON writes v as the JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":true,"message":"Internal error.","code":"INTERNAL_ERROR","details":{}}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// respond writes the success envelope.
func respond(w http.ResponseWriter, status int, message string, data any) {
	if data == nil {
		data = struct{}{}
	}
	writeJSON(w, status, successEnvelope{Success: true, Message: message, Data: data})
}

// statusOf maps an error code to its HTTP status.
func statusOf(code string) int {
	switch code {
	case wabsync.EBadRequest:
		return http.StatusBadRequest
	case wabsync.EUnauthorized:
		return http.StatusUnauthorized
	case wabsync.EForbidden:
		return http.StatusForbidden
	case wabsync.ENotFound:
		return http.StatusNotFound
	case wabsync.EMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case wabsync.EConflict, wabsync.ESessionNotConnected, wabsync.EIdempotencyConflict:
		return http.StatusConflict
	case wabsync.EPayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case wabsync.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case wabsync.EValidation:
		return http.StatusUnprocessableEntity
	case wabsync.ERateLimited:
		return http.StatusTooManyRequests
	case wabsync.EUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// retryAfterUnavailable is the Retry-After, in seconds, of a 503: long
// enough not to hammer a database that is coming back, short enough that a
// client retrying on this node loses little once it is back.
const retryAfterUnavailable = 5

// writeError writes the error envelope for err. Errors that are not a
// *wabsync.Error are logged with the request id and answered as
// INTERNAL_ERROR without their text.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = store.Classify(err) // a read's driver error, as the store's writes are
	var fault *store.Fault
	if errors.As(err, &fault) {
		// The kind, not the driver's text: it may quote data or settings.
		s.logger.WarnContext(r.Context(), "storage unavailable", "request_id", requestIDFrom(r.Context()),
			"method", r.Method, "path", r.URL.Path, "fault", fault.Kind)
	}
	var e *wabsync.Error
	if !errors.As(err, &e) {
		s.logger.ErrorContext(r.Context(), "request failed", "request_id", requestIDFrom(r.Context()),
			"method", r.Method, "path", r.URL.Path, "err", err)
		e = &wabsync.Error{Code: wabsync.EInternal, Message: "Internal error. The request id identifies it in the server's logs."}
	}
	status := statusOf(e.Code)
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="wabsync"`)
	case http.StatusServiceUnavailable:
		if w.Header().Get("Retry-After") == "" { // a handler may know better
			w.Header().Set("Retry-After", strconv.Itoa(retryAfterUnavailable))
		}
	}
	details := e.Details
	if details == nil {
		details = map[string]string{}
	}
	writeJSON(w, status, errorEnvelope{Error: true, Message: e.Message, Code: e.Code, Details: details})
}

func errorf(code, format string, args ...any) error { return wabsync.Errorf(code, format, args...) }

func fieldError(code, field, msg string) error {
	return &wabsync.Error{Code: code, Message: "Invalid " + field + ": " + msg, Details: map[string]string{field: msg}}
}
