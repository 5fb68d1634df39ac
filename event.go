package wabsync

import (
	"encoding/json"
	"time"
)

// Event types (API.md, "Webhooks"). Each is stored as a row in the same
// transaction as the change it reports, delivered to matching webhooks and
// streamed to SSE subscribers.
const (
	// EventSessionStatus is emitted when a session's status or its reason changes.
	EventSessionStatus = "session.status"
	// EventSessionQR is emitted when a session shows a new QR code to scan.
	EventSessionQR = "session.qr"
	// EventMessageReceived is emitted when a message arrives for a session.
	EventMessageReceived = "message.received"
	// EventMessageSent is emitted when WhatsApp accepts an outbound message.
	EventMessageSent = "message.sent"
	// EventMessageDelivered is emitted when a recipient's device got a message.
	EventMessageDelivered = "message.delivered"
	// EventMessageRead is emitted when a recipient read a message, or the
	// session marked an inbound message read.
	EventMessageRead = "message.read"
	// EventMessagePlayed is emitted when a recipient played a voice message.
	EventMessagePlayed = "message.played"
	// EventMessageFailed is emitted when an outbound message cannot be sent.
	EventMessageFailed = "message.failed"
	// EventMessageReaction is emitted when someone reacts to a message.
	EventMessageReaction = "message.reaction"
	// EventMessageEdited is emitted when a message's text is edited.
	EventMessageEdited = "message.edited"
	// EventMessageRevoked is emitted when a message is deleted for everyone.
	EventMessageRevoked = "message.revoked"
	// EventMessageUndecryptable is emitted when a message arrived that could
	// not be decrypted ("waiting for this message").
	EventMessageUndecryptable = "message.undecryptable"
	// EventPresenceUpdate is emitted when a contact starts or stops typing or
	// recording.
	EventPresenceUpdate = "presence.update"
	// EventWebhookTest is emitted when a webhook test is requested.
	EventWebhookTest = "webhook.test"
	// EventWebhookDisabled is emitted when an endpoint is disabled after failing for days.
	EventWebhookDisabled = "webhook.disabled"
)

// EventTypes lists every event type, for validation of webhook filters.
var EventTypes = []string{
	EventSessionStatus, EventSessionQR, EventMessageReceived, EventMessageSent,
	EventMessageDelivered, EventMessageRead, EventMessagePlayed, EventMessageFailed,
	EventMessageReaction, EventMessageEdited, EventMessageRevoked, EventMessageUndecryptable,
	EventPresenceUpdate, EventWebhookTest, EventWebhookDisabled,
}

// IsEventType reports whether t is a known event type.
func IsEventType(t string) bool {
	for _, e := range EventTypes {
		if e == t {
			return true
		}
	}
	return false
}

// Event is one thing that happened, as delivered to webhooks and streams.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	SessionID *string         `json:"session_id"`
	Sequence  int64           `json:"sequence"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// SessionStatusData is the data of a session.status event.
type SessionStatusData struct {
	Status   SessionStatus `json:"status"`
	Previous SessionStatus `json:"previous"`
	Reason   string        `json:"reason"`
	Phone    string        `json:"phone,omitempty"`
	PushName string        `json:"push_name,omitempty"`
}

// SessionQRData is the data of a session.qr event.
type SessionQRData struct {
	QR        string    `json:"qr"`
	ExpiresAt time.Time `json:"expires_at"`
}
