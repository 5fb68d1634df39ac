// Package sandbox is a simulated WhatsApp network inside the server, so the
// whole API can be tried and tested with no phone and no account (API.md,
// "The sandbox engine"). Sessions link by "scanning" a QR code through the
// admin API (or at once with auto_link), get phone numbers, and exchange
// messages and receipts for real. What the network holds for a device that
// is offline is kept in the database (a mailbox per phone), as WhatsApp's
// servers keep it, so nothing is lost across a crash.
package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/wabsync/wabsync"
)

// Test numbers that behave like Stripe's test cards.
const (
	// NumberNotOnWhatsApp is not on WhatsApp: contacts/check says so and sends fail.
	NumberNotOnWhatsApp = "+15550000001"
	// NumberNeverDelivers accepts messages that are never delivered.
	NumberNeverDelivers = "+15550000002"
	// NumberEcho echoes every message back to its sender.
	NumberEcho = "+15550000003"
	// NumberReadsAtOnce delivers and reads every message at once.
	NumberReadsAtOnce = "+15550000004"
)

// Mailbox keeps what the network holds for each phone. The store implements it.
type Mailbox interface {
	// PutMail durably stores body for phone.
	PutMail(ctx context.Context, toPhone string, body []byte) error
	// PutMails durably stores bodies[i] for to[i], all in one write, in order.
	PutMails(ctx context.Context, to []string, bodies [][]byte) error
	// TakeMail returns up to limit items for phone, oldest first.
	TakeMail(ctx context.Context, toPhone string, limit int) (ids []string, bodies [][]byte, err error)
	// ReplaceMail removes delivered items and stores bodies[i] for to[i],
	// in order, all in one write.
	ReplaceMail(ctx context.Context, done []string, to []string, bodies [][]byte) error
	// DropMail removes every item for phone.
	DropMail(ctx context.Context, phone string) error
	// PhoneInUse reports whether a sandbox session is linked to phone.
	PhoneInUse(ctx context.Context, phone string) (bool, error)
}

// Options configure the network.
type Options struct {
	// QRTTL is how long each QR code is valid (default 20 s); QRCodes is how
	// many are shown before linking times out (default 6).
	QRTTL   time.Duration
	QRCodes int
	Now     func() time.Time
}

// Network is the simulated WhatsApp network of one deployment.
type Network struct {
	mb   Mailbox
	opts Options

	mu        sync.Mutex
	online    map[string]*Engine // phone → connected engine
	waiting   map[string]*Engine // QR code → engine waiting for a scan
	bySession map[string]*Engine
	downUntil map[string]time.Time // session → unreachable until
}

// NewNetwork returns an empty network over mb.
func NewNetwork(mb Mailbox, o Options) *Network {
	if o.QRTTL <= 0 {
		o.QRTTL = 20 * time.Second
	}
	if o.QRCodes <= 0 {
		o.QRCodes = 6
	}
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	return &Network{mb: mb, opts: o, online: map[string]*Engine{}, waiting: map[string]*Engine{},
		bySession: map[string]*Engine{}, downUntil: map[string]time.Time{}}
}

var _ wabsync.EngineFactory = (*Network)(nil)

// NewEngine makes a sandbox engine for a session.
func (n *Network) NewEngine(o wabsync.EngineOptions) (wabsync.Engine, error) {
	e := &Engine{n: n, o: o, failLeft: o.Config.FailConnects, phone: o.Phone}
	e.linked = o.DeviceJID != "" && o.Phone != ""
	n.mu.Lock()
	n.bySession[o.SessionID] = e
	n.mu.Unlock()
	return e, nil
}

// Scan links the session that shows qr, as a phone scanning it would. It
// returns the session's id.
func (n *Network) Scan(ctx context.Context, qr string) (string, error) {
	n.mu.Lock()
	e := n.waiting[qr]
	if e != nil {
		delete(n.waiting, qr)
	}
	n.mu.Unlock()
	if e == nil {
		return "", &wabsync.Error{Code: wabsync.EValidation, Message: "No session shows this QR code now; it is unknown or expired.",
			Details: map[string]string{"qr": "unknown or expired QR code"}}
	}
	if err := e.link(ctx); err != nil {
		return "", err
	}
	return e.o.SessionID, nil
}

// Drop cuts a session's connection; the network is unreachable for it for d,
// so its reconnects fail until then.
func (n *Network) Drop(sessionID string, d time.Duration) error {
	n.mu.Lock()
	e := n.bySession[sessionID]
	n.downUntil[sessionID] = n.opts.Now().Add(d)
	n.mu.Unlock()
	if e == nil {
		return wabsync.Errorf(wabsync.EConflict, "The session is not running on the sandbox.")
	}
	e.drop("dropped by the sandbox")
	return nil
}

// Inject delivers a message from any number to a linked sandbox phone, as
// if someone had sent it. It is stored in the phone's mailbox and handed
// to the session when it is connected.
func (n *Network) Inject(ctx context.Context, toPhone string, p *Packet) error {
	p.Type = "message"
	if p.WAID == "" {
		p.WAID = wabsync.NewWAID()
	}
	if p.At.IsZero() {
		p.At = n.opts.Now()
	}
	return n.post(ctx, toPhone, p)
}

// Deliver hands p to the session's engine at once, as if it had just
// arrived, and returns once the session stored it. The session must be
// connected on this node.
func (n *Network) Deliver(ctx context.Context, sessionID string, p *Packet) error {
	n.mu.Lock()
	e := n.bySession[sessionID]
	n.mu.Unlock()
	if e == nil {
		return errOffline
	}
	if _, ok := e.me(); !ok {
		return errOffline
	}
	p.Type = "message"
	if p.WAID == "" {
		p.WAID = wabsync.NewWAID()
	}
	if p.At.IsZero() {
		p.At = n.opts.Now()
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return e.deliver(ctx, body)
}

// post stores p in the mailbox of phone and wakes its engine if it is online
// here.
func (n *Network) post(ctx context.Context, toPhone string, p *Packet) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := n.mb.PutMail(ctx, toPhone, body); err != nil {
		return err
	}
	n.Wake(toPhone)
	return nil
}

// Wake makes the engine online for phone, if any, fetch its mail.
func (n *Network) Wake(phone string) {
	n.mu.Lock()
	e := n.online[phone]
	n.mu.Unlock()
	if e != nil {
		e.kick()
	}
}

func (n *Network) isDown(sessionID string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.downUntil[sessionID]
	if !ok {
		return false
	}
	if n.opts.Now().After(t) {
		delete(n.downUntil, sessionID)
		return false
	}
	return true
}

// allocatePhone picks a free number in +1 555 01xx xxxx.
func (n *Network) allocatePhone(ctx context.Context) (string, error) {
	for i := 0; i < 50; i++ {
		p := fmt.Sprintf("+155501%06d", rand.IntN(1000000))
		used, err := n.mb.PhoneInUse(ctx, p)
		if err != nil {
			return "", err
		}
		if !used {
			// Mail a deleted session left behind is not for the new one.
			if err := n.mb.DropMail(ctx, p); err != nil {
				return "", err
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("sandbox: no free phone number found")
}

// Packet is what travels on the sandbox network: a message or a receipt.
type Packet struct {
	Type     string    `json:"type"` // message, receipt
	WAID     string    `json:"wa_id,omitempty"`
	From     string    `json:"from"` // phone, E.164
	At       time.Time `json:"at"`
	PushName string    `json:"push_name,omitempty"`

	Kind     string                   `json:"kind,omitempty"`
	Text     string                   `json:"text,omitempty"`
	Caption  string                   `json:"caption,omitempty"`
	Media    *wabsync.Media           `json:"media,omitempty"`
	BlobKey  string                   `json:"blob_key,omitempty"`
	Location *wabsync.Location        `json:"location,omitempty"`
	Contacts []wabsync.Contact        `json:"contacts,omitempty"`
	ReplyTo  string                   `json:"reply_to,omitempty"`
	Mentions []string                 `json:"mentions,omitempty"`
	Reaction *wabsync.InboundReaction `json:"reaction,omitempty"`
	EditOf   string                   `json:"edit_of,omitempty"`
	RevokeOf string                   `json:"revoke_of,omitempty"`

	// Receipts.
	WAIDs  []string              `json:"wa_ids,omitempty"`
	Status wabsync.MessageStatus `json:"status,omitempty"`
}

// JID returns the sandbox JID of a phone.
func JID(phone string) string { return strings.TrimPrefix(phone, "+") + "@s.whatsapp.net" }

// PhoneOf returns the phone (E.164) of a user JID, or "".
func PhoneOf(jid string) string {
	user, server, ok := strings.Cut(jid, "@")
	if !ok || server != "s.whatsapp.net" || user == "" {
		return ""
	}
	if i := strings.IndexAny(user, ":."); i >= 0 {
		user = user[:i]
	}
	return "+" + user
}

// SessionOfQR returns the session id a sandbox QR code belongs to, or "".
func SessionOfQR(qr string) string {
	i := strings.LastIndexByte(qr, ',')
	if !strings.HasPrefix(qr, "2@sandbox,") || i < 0 {
		return ""
	}
	return qr[i+1:]
}
