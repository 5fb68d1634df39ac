package wabsync

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Engine is one session's connection to WhatsApp (or to the sandbox network).
// It is the only thing the rest of WabSync knows about WhatsApp.
//
// An engine reports what happens through the EngineHandler it was made with;
// it never changes WabSync's state itself. Engines do not reconnect on their
// own: the session runtime decides when to call Connect again, with backoff,
// so that there is one place that bounds retries.
type Engine interface {
	// Connect opens the connection. It returns nil once the engine is
	// connected or is waiting for a link (EngineQR events follow), and an error
	// when this attempt failed; the runtime then retries with backoff unless
	// the error is an *EngineError with Permanent set.
	Connect(ctx context.Context) error
	// Disconnect closes the connection and keeps the link. It is idempotent.
	Disconnect()
	// Logout unlinks the device from the account and forgets its keys. The
	// next Connect needs a new link.
	Logout(ctx context.Context) error
	// PairPhone starts linking by code for phone (E.164 digits) and returns
	// the code the user types on the phone ("ABCD-EFGH"). Only valid while
	// waiting for a link.
	PairPhone(ctx context.Context, phone string) (string, error)
	// Send sends one message. Msg.WAID is fixed by the caller; sending the same
	// WAID twice must not show the message twice to the recipient. Errors that
	// say why the message cannot go are *EngineError with a message error code.
	Send(ctx context.Context, msg *OutgoingMessage) (SendResult, error)
	// MarkRead marks the given inbound messages of chat (sent by sender) read.
	MarkRead(ctx context.Context, chat, sender string, waIDs []string, at time.Time) error
	// SendPresence tells chat that this account is typing, recording or paused.
	SendPresence(ctx context.Context, chat, state string) error
	// CheckPhones tells which phone numbers (E.164) are on WhatsApp.
	CheckPhones(ctx context.Context, phones []string) ([]PhoneCheck, error)
	// DownloadMedia returns the bytes of inbound media by the Ref the engine
	// gave in its InboundMessage.
	DownloadMedia(ctx context.Context, ref string) (io.ReadCloser, error)
	// Close releases everything the engine holds. The engine is not used after.
	Close() error
}

// EngineOptions is what an engine is made with.
type EngineOptions struct {
	SessionID string
	Name      string
	Config    SessionConfig
	// DeviceJID is the linked identity from an earlier run; empty when not linked.
	DeviceJID string
	// Phone is the linked phone number (E.164) from an earlier run.
	Phone   string
	Handler EngineHandler
	Logger  *slog.Logger
}

// EngineFactory makes engines of one kind.
type EngineFactory interface {
	NewEngine(opts EngineOptions) (Engine, error)
}

// EngineHandler receives an engine's events. An engine calls it from its own
// goroutines, one event at a time per session, in order. For events that carry
// data (messages, receipts) the call returns only once the event is stored, so
// an engine may acknowledge to its server after the call returns; an error
// means it was not stored and the engine should let the server redeliver.
type EngineHandler func(ctx context.Context, ev EngineEvent) error

// EngineEvent is one of the Engine* event types below.
type EngineEvent interface{ engineEvent() }

// EngineQR is emitted when a new QR code is to be shown; it replaces the last.
type EngineQR struct {
	Code      string
	ExpiresAt time.Time
}

// EngineLinkTimeout is emitted when linking ended without a link: no one
// scanned the QR codes in time, or the pairing failed. Reason says which
// (empty: the codes timed out).
type EngineLinkTimeout struct{ Reason string }

// EnginePaired is emitted when the device got linked (by QR or pair code).
type EnginePaired struct {
	DeviceJID string
	Phone     string
	PushName  string
}

// EngineConnected is emitted when the connection is up and linked.
type EngineConnected struct {
	Phone    string
	PushName string
}

// EngineDisconnected is emitted when a live connection drops; the runtime
// reconnects.
type EngineDisconnected struct{ Reason string }

// EngineLoggedOut is emitted when the link is gone (logged out from the
// phone, or the device was removed). The engine forgot its keys.
type EngineLoggedOut struct{ Reason string }

// EngineStreamReplaced is emitted when another client took over the link.
type EngineStreamReplaced struct{}

// EngineTemporaryBan is emitted when WhatsApp bans the account for a while.
type EngineTemporaryBan struct {
	Reason  string
	Expires time.Time
}

// EngineClientOutdated is emitted when WhatsApp refuses the client's version.
type EngineClientOutdated struct{}

// EngineMessage is emitted for every inbound (or own-device) message.
type EngineMessage struct{ Msg InboundMessage }

// EngineReceipt is emitted when messages were delivered, read or played.
type EngineReceipt struct {
	Chat   string
	Sender string
	WAIDs  []string
	Status MessageStatus // delivered, read or played
	At     time.Time
	// FromMe is true for receipts of this account's own other devices
	// marking inbound messages read.
	FromMe bool
}

// EngineUndecryptable is emitted when a message could not be decrypted.
type EngineUndecryptable struct {
	WAID      string
	Chat      string
	FromJID   string
	FromLID   string
	FromPhone string
	At        time.Time
}

// EnginePresence is emitted when a contact is typing, recording or paused.
type EnginePresence struct {
	Chat  string
	From  string
	State string
}

// EngineBatch carries several data events (messages, receipts, presence)
// that the handler stores in one transaction, in order. Engines that receive
// in bursts use it so that a burst costs one commit, not one per event.
type EngineBatch struct{ Events []EngineEvent }

// BatchSender is implemented by engines that can take several messages with
// one durable write (the sandbox). The runtime then hands them a paced batch
// at once. The results and errors are in the order of msgs.
type BatchSender interface {
	SendBatch(ctx context.Context, msgs []*OutgoingMessage) ([]SendResult, []error)
}

func (EngineBatch) engineEvent()          {}
func (EngineQR) engineEvent()             {}
func (EngineLinkTimeout) engineEvent()    {}
func (EnginePaired) engineEvent()         {}
func (EngineConnected) engineEvent()      {}
func (EngineDisconnected) engineEvent()   {}
func (EngineLoggedOut) engineEvent()      {}
func (EngineStreamReplaced) engineEvent() {}
func (EngineTemporaryBan) engineEvent()   {}
func (EngineClientOutdated) engineEvent() {}
func (EngineMessage) engineEvent()        {}
func (EngineReceipt) engineEvent()        {}
func (EngineUndecryptable) engineEvent()  {}
func (EnginePresence) engineEvent()       {}

// InboundMessage is a message as an engine reports it. Reactions, edits and
// revokes of earlier messages come as messages of their own with Reaction,
// EditOf or RevokeOf set.
type InboundMessage struct {
	WAID      string
	Chat      string // chat JID (user or group)
	FromJID   string
	FromLID   string
	FromPhone string // E.164 when known
	PushName  string
	FromMe    bool
	Timestamp time.Time

	Kind     string
	Text     string
	Caption  string
	Media    *InboundMedia
	Location *Location
	Contacts []Contact
	ReplyTo  string // WAID of the quoted message
	Mentions []string

	Reaction *InboundReaction
	EditOf   string // WAID of the edited message; Text is the new text
	RevokeOf string // WAID of the revoked message
}

// InboundMedia describes inbound media. Either BlobKey (bytes already in the
// blob store) or Ref (download later through Engine.DownloadMedia) is set.
type InboundMedia struct {
	MimeType string
	Size     int64
	SHA256   string
	Filename string
	BlobKey  string
	Ref      string
}

// InboundReaction is a reaction to TargetWAID; an empty Emoji removes it.
type InboundReaction struct {
	TargetWAID string
	Emoji      string
}

// OutgoingMessage is one message for Engine.Send.
type OutgoingMessage struct {
	WAID        string
	To          string // JID
	Kind        string
	Text        string
	Caption     string
	LinkPreview bool
	Mentions    []string // JIDs
	ReplyTo     *QuotedMessage
	Media       *OutgoingMedia
	Location    *Location
	Contacts    []Contact
	// Reaction, Edit and Revoke act on an earlier message.
	Reaction *OutgoingReaction
	Edit     *OutgoingEdit
	Revoke   *MessageTarget
}

// QuotedMessage is the message a reply quotes.
type QuotedMessage struct {
	WAID   string
	Sender string // JID of the quoted message's author
	FromMe bool
	Text   string
}

// MessageTarget names an earlier message in a chat.
type MessageTarget struct {
	WAID   string
	Sender string // JID of its author
	FromMe bool
}

// OutgoingReaction sets (or with an empty Emoji removes) a reaction.
type OutgoingReaction struct {
	Target MessageTarget
	Emoji  string
}

// OutgoingEdit replaces the text of an earlier own message.
type OutgoingEdit struct {
	Target MessageTarget
	Text   string
}

// OutgoingMedia is the file of an outgoing message, opened on demand so that
// it is streamed, never held whole twice.
type OutgoingMedia struct {
	MimeType string
	Filename string
	Size     int64
	SHA256   string
	BlobKey  string
	Open     func() (io.ReadCloser, error)
}

// SendResult is what the network said when it took a message.
type SendResult struct {
	Timestamp time.Time
}

// EngineError is an error an engine reports with a code users can act on.
type EngineError struct {
	Code      string // e.g. MsgErrNotOnWhatsApp
	Message   string
	Permanent bool // retrying will not help
}

// Error implements error.
func (e *EngineError) Error() string { return e.Code + ": " + e.Message }
