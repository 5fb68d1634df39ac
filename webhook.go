package wabsync

import "time"

// Webhook is an endpoint that receives events: of one session, or of every
// session when SessionID is nil.
type Webhook struct {
	ID             string    `json:"id"`
	SessionID      *string   `json:"session_id"`
	URL            string    `json:"url"`
	Events         []string  `json:"events"`
	Enabled        bool      `json:"enabled"`
	Description    string    `json:"description"`
	DisabledReason string    `json:"disabled_reason"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// Secret is only set in the responses that create or rotate it.
	Secret string `json:"secret,omitempty"`
}

// Matches reports whether events of type t go to w.
func (w *Webhook) Matches(t string) bool {
	for _, e := range w.Events {
		if e == "*" || e == t {
			return true
		}
	}
	return false
}

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// Delivery is one event on its way to one webhook endpoint.
type Delivery struct {
	ID            string            `json:"id"`
	WebhookID     string            `json:"webhook_id"`
	EventID       string            `json:"event_id"`
	EventType     string            `json:"event_type"`
	Status        string            `json:"status"`
	Attempts      []DeliveryAttempt `json:"attempts"`
	NextAttemptAt *time.Time        `json:"next_attempt_at"`
	CreatedAt     time.Time         `json:"created_at"`
}

// DeliveryAttempt is one try at a delivery.
type DeliveryAttempt struct {
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code"`
	LatencyMS  int64     `json:"latency_ms"`
	Error      string    `json:"error"`
}
