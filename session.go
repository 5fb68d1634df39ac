package wabsync

import (
	"context"
	"time"
)

// SessionStatus is where a session is in its lifecycle.
type SessionStatus string

// Session statuses (API.md, "Sessions").
const (
	StatusStopped      SessionStatus = "stopped"      // not running; connect starts it
	StatusStarting     SessionStatus = "starting"     // the engine is connecting
	StatusScanQR       SessionStatus = "scan_qr"      // waiting for a QR scan or pair code
	StatusConnected    SessionStatus = "connected"    // linked and online
	StatusReconnecting SessionStatus = "reconnecting" // lost the connection, retrying with backoff
	StatusLoggedOut    SessionStatus = "logged_out"   // unlinked; connect shows a new QR
	StatusFailed       SessionStatus = "failed"       // gave up; status_reason says why
)

// Valid reports whether s is one of the known statuses.
func (s SessionStatus) Valid() bool {
	switch s {
	case StatusStopped, StatusStarting, StatusScanQR, StatusConnected, StatusReconnecting, StatusLoggedOut, StatusFailed:
		return true
	}
	return false
}

// Engine names.
const (
	EngineWhatsmeow = "whatsmeow"
	EngineSandbox   = "sandbox"
)

// SessionConfig is a session's settings, given at creation and by PATCH.
// Unknown fields are refused.
type SessionConfig struct {
	// AutoLink (sandbox) links at once on connect, without a QR scan.
	AutoLink bool `json:"auto_link,omitempty"`
	// Phone (sandbox) is the number the session gets when linked, E.164.
	Phone string `json:"phone,omitempty"`
	// AutoRead (sandbox) marks inbound messages read as soon as they arrive.
	AutoRead bool `json:"auto_read,omitempty"`
	// FailConnects (sandbox) makes the next N connection attempts fail, to
	// exercise reconnect handling.
	FailConnects int `json:"fail_connects,omitempty"`
	// SendRate is how many messages per second the session sends to
	// WhatsApp (0: the server default).
	SendRate float64 `json:"send_rate,omitempty"`
	// SendBurst is how many messages may go at once before pacing starts
	// (0: the server default).
	SendBurst int `json:"send_burst,omitempty"`
	// Proxy (whatsmeow) is an http(s) or socks5 proxy URL for the connection.
	Proxy string `json:"proxy,omitempty"`
}

// Session is one linked (or to-be-linked) WhatsApp account.
type Session struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Engine       string         `json:"engine"`
	Status       SessionStatus  `json:"status"`
	StatusReason string         `json:"status_reason"`
	Phone        string         `json:"phone"`
	PushName     string         `json:"push_name"`
	Config       SessionConfig  `json:"config"`
	Metadata     map[string]any `json:"metadata"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	ConnectedAt  *time.Time     `json:"connected_at"`

	// DeviceJID is the engine's own identity once linked (whatsmeow's device
	// JID; the sandbox's phone JID). Not part of the API.
	DeviceJID string `json:"-"`
	// Desired is true when the session should be running: set by connect,
	// cleared by disconnect and logout. Sessions with Desired resume on start.
	Desired bool `json:"-"`
}

// SessionFilter selects sessions in a list.
type SessionFilter struct {
	Status SessionStatus
	Page   Page
}

// Page is the cursor and limit of a list request; After is the decoded cursor
// (the last id of the previous page).
type Page struct {
	Limit int
	After string
}

// List is one page of a list response.
type List[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
	HasMore    bool    `json:"has_more"`
}

// Principal is who is calling: the admin, or one session's token.
type Principal struct {
	Admin     bool
	SessionID string
	// TokenID identifies the token (for rate limiting and logs); never the token.
	TokenID string
}

type principalKey struct{}

// NewContextWithPrincipal returns ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the caller of the request, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
