package wabsync

import "time"

// Message directions.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// Message kinds.
const (
	KindText     = "text"
	KindImage    = "image"
	KindVideo    = "video"
	KindAudio    = "audio"
	KindVoice    = "voice"
	KindDocument = "document"
	KindSticker  = "sticker"
	KindLocation = "location"
	KindContact  = "contact"
	KindReaction = "reaction"
)

// IsMediaKind reports whether messages of kind k carry a file.
func IsMediaKind(k string) bool {
	switch k {
	case KindImage, KindVideo, KindAudio, KindVoice, KindDocument, KindSticker:
		return true
	}
	return false
}

// MessageStatus is where a message is. Outbound: queued → sending → sent →
// delivered → read (→ played for voice), or failed. Inbound: received → read.
type MessageStatus string

// Message statuses.
const (
	MsgQueued    MessageStatus = "queued"
	MsgSending   MessageStatus = "sending"
	MsgSent      MessageStatus = "sent"
	MsgDelivered MessageStatus = "delivered"
	MsgRead      MessageStatus = "read"
	MsgPlayed    MessageStatus = "played"
	MsgFailed    MessageStatus = "failed"
	MsgReceived  MessageStatus = "received"
)

// Rank orders statuses so that a late or repeated receipt never moves a
// message backwards. Failed is final.
func (s MessageStatus) Rank() int {
	switch s {
	case MsgQueued:
		return 0
	case MsgSending:
		return 1
	case MsgSent, MsgReceived:
		return 2
	case MsgDelivered:
		return 3
	case MsgRead:
		return 4
	case MsgPlayed:
		return 5
	case MsgFailed:
		return 9
	}
	return -1
}

// Final reports whether a message in status s needs nothing more from the
// sender.
func (s MessageStatus) Final() bool { return s != MsgQueued && s != MsgSending }

// Message error codes (in Message.Error and message.failed events).
const (
	MsgErrNotOnWhatsApp  = "NOT_ON_WHATSAPP"
	MsgErrReachOutLocked = "REACH_OUT_TIMELOCK"
	MsgErrRateLimited    = "WHATSAPP_RATE_LIMITED"
	MsgErrMediaUpload    = "MEDIA_UPLOAD_FAILED"
	MsgErrMediaMissing   = "MEDIA_NOT_FOUND"
	MsgErrTargetNotFound = "TARGET_NOT_FOUND"
	MsgErrTargetRevoked  = "TARGET_REVOKED"
	MsgErrSendFailed     = "SEND_FAILED"
	MsgErrLoggedOut      = "SESSION_LOGGED_OUT"
)

// Media describes a message's file.
type Media struct {
	MimeType string `json:"mime_type"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Filename string `json:"filename,omitempty"`
	// URL is a signed, expiring link to the bytes (inbound messages).
	URL string `json:"url,omitempty"`
	// BlobKey names the bytes in the blob store; empty until downloaded.
	BlobKey string `json:"-"`
	// Ref is the engine's handle to download the bytes later (whatsmeow's
	// media keys, serialised); empty when the bytes are already stored.
	Ref string `json:"-"`
}

// Location is a point on the map.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
}

// Contact is a shared contact card.
type Contact struct {
	Name   string   `json:"name"`
	Phones []string `json:"phones"`
	VCard  string   `json:"vcard,omitempty"`
}

// Reaction is an emoji reaction to a message.
type Reaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

// ReactionEntry is one reactor's current reaction on a message.
type ReactionEntry struct {
	From  string    `json:"from"`
	Emoji string    `json:"emoji"`
	At    time.Time `json:"at"`
}

// StatusChange is one entry of a message's status history.
type StatusChange struct {
	Status MessageStatus `json:"status"`
	At     time.Time     `json:"at"`
}

// MessageError says why a message failed.
type MessageError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Message is one message sent or received by a session.
type Message struct {
	ID            string          `json:"id"`
	SessionID     string          `json:"session_id"`
	Direction     string          `json:"direction"`
	Chat          string          `json:"chat"`
	From          string          `json:"from"`
	To            string          `json:"to"`
	FromJID       string          `json:"from_jid"`
	ToJID         string          `json:"to_jid"`
	FromLID       string          `json:"from_lid,omitempty"`
	Kind          string          `json:"kind"`
	Text          string          `json:"text,omitempty"`
	Caption       string          `json:"caption,omitempty"`
	Media         *Media          `json:"media,omitempty"`
	Location      *Location       `json:"location,omitempty"`
	Contacts      []Contact       `json:"contacts,omitempty"`
	Reaction      *Reaction       `json:"reaction,omitempty"`
	Reactions     []ReactionEntry `json:"reactions,omitempty"`
	ReplyTo       string          `json:"reply_to,omitempty"`
	Mentions      []string        `json:"mentions,omitempty"`
	LinkPreview   bool            `json:"link_preview,omitempty"`
	Status        MessageStatus   `json:"status"`
	StatusHistory []StatusChange  `json:"status_history"`
	Error         *MessageError   `json:"error,omitempty"`
	WAID          string          `json:"wa_id"`
	Sequence      int64           `json:"sequence"`
	Edited        bool            `json:"edited,omitempty"`
	Revoked       bool            `json:"revoked,omitempty"`
	Timestamp     *time.Time      `json:"timestamp,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

// MessageFilter selects messages in a list.
type MessageFilter struct {
	Chat      string
	Direction string
	Status    MessageStatus
	Since     *time.Time
	Until     *time.Time
	Page      Page
}

// Chat is a conversation with its last message and unread count.
type Chat struct {
	JID         string    `json:"jid"`
	Name        string    `json:"name,omitempty"`
	LastMessage *Message  `json:"last_message"`
	UnreadCount int       `json:"unread_count"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ContactInfo is a contact known to a session.
type ContactInfo struct {
	JID      string    `json:"jid"`
	Phone    string    `json:"phone,omitempty"`
	LID      string    `json:"lid,omitempty"`
	PushName string    `json:"push_name,omitempty"`
	LastSeen time.Time `json:"updated_at"`
}

// PhoneCheck is the answer for one number of contacts/check.
type PhoneCheck struct {
	Phone      string `json:"phone"`
	OnWhatsApp bool   `json:"on_whatsapp"`
	JID        string `json:"jid,omitempty"`
}
