package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/wabsync/wabsync"
)

// Engine is one session's device on the sandbox network.
type Engine struct {
	n *Network
	o wabsync.EngineOptions

	mu        sync.Mutex
	phone     string
	linked    bool
	connected bool
	failLeft  int
	qr        string
	qrShown   int
	qrTimer   *time.Timer
	closed    bool

	drainMu  sync.Mutex // one mailbox drain at a time
	kickMu   sync.Mutex
	kicking  bool
	kickMore bool
}

var _ wabsync.Engine = (*Engine)(nil)

func connectErr(msg string) error {
	return &wabsync.EngineError{Code: "CONNECT_FAILED", Message: msg}
}

// Connect connects a linked device, or starts showing QR codes.
func (e *Engine) Connect(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return connectErr("sandbox: engine closed")
	}
	if e.failLeft > 0 {
		e.failLeft--
		e.mu.Unlock()
		return connectErr("sandbox: simulated connection failure (config fail_connects)")
	}
	if e.n.isDown(e.o.SessionID) {
		e.mu.Unlock()
		return connectErr("sandbox: the network is unreachable (dropped through the sandbox API)")
	}
	if e.linked {
		e.mu.Unlock()
		return e.goOnline(ctx)
	}
	if e.o.Config.AutoLink {
		e.mu.Unlock()
		return e.link(ctx)
	}
	e.qrShown = 0
	e.mu.Unlock()
	return e.showQR(ctx)
}

// showQR shows a new QR code and schedules its rotation.
func (e *Engine) showQR(ctx context.Context) error {
	e.mu.Lock()
	if e.closed || e.linked {
		e.mu.Unlock()
		return nil
	}
	if e.qr != "" {
		e.n.mu.Lock()
		delete(e.n.waiting, e.qr)
		e.n.mu.Unlock()
	}
	if e.qrShown >= e.n.opts.QRCodes {
		e.qr = ""
		e.mu.Unlock()
		return e.o.Handler(ctx, wabsync.EngineLinkTimeout{})
	}
	e.qrShown++
	code := "2@sandbox," + wabsync.RandomBase62(32) + "," + e.o.SessionID
	e.qr = code
	e.n.mu.Lock()
	e.n.waiting[code] = e
	e.n.mu.Unlock()
	ttl := e.n.opts.QRTTL
	e.qrTimer = time.AfterFunc(ttl, func() { _ = e.showQR(context.Background()) })
	exp := e.n.opts.Now().Add(ttl)
	e.mu.Unlock()
	return e.o.Handler(ctx, wabsync.EngineQR{Code: code, ExpiresAt: exp})
}

// link pairs the device: a phone number is assigned and it goes online.
func (e *Engine) link(ctx context.Context) error {
	e.mu.Lock()
	if e.qrTimer != nil {
		e.qrTimer.Stop()
	}
	e.qr = ""
	phone := e.o.Config.Phone
	e.mu.Unlock()
	if phone == "" {
		p, err := e.n.allocatePhone(ctx)
		if err != nil {
			return err
		}
		phone = p
	} else if used, err := e.n.mb.PhoneInUse(ctx, phone); err != nil {
		return err
	} else if used && phone != e.o.Phone {
		return &wabsync.Error{Code: wabsync.EConflict, Message: "Another sandbox session is linked to " + phone + "."}
	}
	e.mu.Lock()
	e.phone, e.linked = phone, true
	e.mu.Unlock()
	if err := e.o.Handler(ctx, wabsync.EnginePaired{DeviceJID: JID(phone), Phone: phone, PushName: e.o.Name}); err != nil {
		return err
	}
	return e.goOnline(ctx)
}

func (e *Engine) goOnline(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return connectErr("sandbox: engine closed")
	}
	e.connected = true
	phone := e.phone
	e.mu.Unlock()
	e.n.mu.Lock()
	e.n.online[phone] = e
	e.n.mu.Unlock()
	if err := e.o.Handler(ctx, wabsync.EngineConnected{Phone: phone, PushName: e.o.Name}); err != nil {
		return err
	}
	e.kick()
	return nil
}

// drop cuts the connection as a network failure would.
func (e *Engine) drop(reason string) {
	if e.offline() {
		_ = e.o.Handler(context.Background(), wabsync.EngineDisconnected{Reason: reason})
	}
}

// offline takes the device off the network; it reports whether it was on.
func (e *Engine) offline() bool {
	e.mu.Lock()
	was := e.connected
	e.connected = false
	if e.qrTimer != nil {
		e.qrTimer.Stop()
	}
	qr, phone := e.qr, e.phone
	e.qr = ""
	e.mu.Unlock()
	e.n.mu.Lock()
	if qr != "" {
		delete(e.n.waiting, qr)
	}
	if phone != "" && e.n.online[phone] == e {
		delete(e.n.online, phone)
	}
	e.n.mu.Unlock()
	return was
}

// Disconnect goes offline and keeps the link.
func (e *Engine) Disconnect() { e.offline() }

// Logout forgets the link.
func (e *Engine) Logout(ctx context.Context) error {
	e.offline()
	e.mu.Lock()
	e.linked = false
	e.phone = ""
	e.mu.Unlock()
	return nil
}

// Close releases the engine.
func (e *Engine) Close() error {
	e.offline()
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.n.mu.Lock()
	if e.n.bySession[e.o.SessionID] == e {
		delete(e.n.bySession, e.o.SessionID)
	}
	e.n.mu.Unlock()
	return nil
}

// PairPhone links by code: the sandbox links as soon as the code is asked
// for, as if it had been typed on the phone at once.
func (e *Engine) PairPhone(ctx context.Context, phone string) (string, error) {
	e.mu.Lock()
	waiting := e.qr != ""
	e.mu.Unlock()
	if !waiting {
		return "", &wabsync.EngineError{Code: "NOT_WAITING", Message: "The session is not waiting for a link."}
	}
	code := strings.ToUpper(wabsync.RandomBase62(4) + "-" + wabsync.RandomBase62(4))
	e.mu.Lock()
	e.o.Config.Phone = phone
	e.mu.Unlock()
	go func() { _ = e.link(context.Background()) }()
	return code, nil
}

func (e *Engine) me() (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.phone, e.connected
}

var errOffline = &wabsync.EngineError{Code: "NOT_CONNECTED", Message: "sandbox: not connected"}

// outbox collects the packets of a send, to store them in one write.
type outbox struct {
	to     []string
	bodies [][]byte
}

func (o *outbox) add(phone string, p *Packet) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	o.to = append(o.to, phone)
	o.bodies = append(o.bodies, b)
	return nil
}

// flush stores the packets durably and wakes their recipients.
func (n *Network) flush(ctx context.Context, o *outbox) error {
	if len(o.to) == 0 {
		return nil
	}
	if err := n.mb.PutMails(ctx, o.to, o.bodies); err != nil {
		return err
	}
	n.wakeAll(o)
	return nil
}

// wakeAll wakes the recipients of o's packets.
func (n *Network) wakeAll(o *outbox) {
	seen := map[string]bool{}
	for _, p := range o.to {
		if !seen[p] {
			seen[p] = true
			n.Wake(p)
		}
	}
}

// Send delivers msg on the network.
func (e *Engine) Send(ctx context.Context, msg *wabsync.OutgoingMessage) (wabsync.SendResult, error) {
	res, errs := e.SendBatch(ctx, []*wabsync.OutgoingMessage{msg})
	return res[0], errs[0]
}

var _ wabsync.BatchSender = (*Engine)(nil)

// SendBatch delivers several messages with one durable write, in order.
func (e *Engine) SendBatch(ctx context.Context, msgs []*wabsync.OutgoingMessage) ([]wabsync.SendResult, []error) {
	res := make([]wabsync.SendResult, len(msgs))
	errs := make([]error, len(msgs))
	from, ok := e.me()
	if !ok {
		for i := range errs {
			errs[i] = errOffline
		}
		return res, errs
	}
	now := e.n.opts.Now()
	var ob outbox
	inUse := map[string]bool{}
	for i, msg := range msgs {
		res[i], errs[i] = e.prepare(ctx, from, msg, now, &ob, inUse)
	}
	if err := e.n.flush(ctx, &ob); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return res, errs
}

// prepare turns msg into the packets it makes on the network.
func (e *Engine) prepare(ctx context.Context, from string, msg *wabsync.OutgoingMessage, now time.Time, ob *outbox, inUse map[string]bool) (wabsync.SendResult, error) {
	to := PhoneOf(msg.To)
	if to == "" {
		return wabsync.SendResult{}, &wabsync.EngineError{Code: wabsync.MsgErrNotOnWhatsApp, Permanent: true,
			Message: "The sandbox has no groups or other kinds of chat; send to a phone number."}
	}
	if to == NumberNotOnWhatsApp {
		return wabsync.SendResult{}, &wabsync.EngineError{Code: wabsync.MsgErrNotOnWhatsApp, Permanent: true,
			Message: to + " is not on WhatsApp."}
	}
	p := &Packet{Type: "message", WAID: msg.WAID, From: from, At: now, PushName: e.o.Name, Kind: msg.Kind,
		Text: msg.Text, Caption: msg.Caption, Location: msg.Location, Contacts: msg.Contacts, Mentions: msg.Mentions}
	if msg.ReplyTo != nil {
		p.ReplyTo = msg.ReplyTo.WAID
	}
	if msg.Media != nil {
		p.Media = &wabsync.Media{MimeType: msg.Media.MimeType, Size: msg.Media.Size, SHA256: msg.Media.SHA256, Filename: msg.Media.Filename}
		p.BlobKey = msg.Media.BlobKey
	}
	if msg.Reaction != nil {
		p.Kind = wabsync.KindReaction
		p.Reaction = &wabsync.InboundReaction{TargetWAID: msg.Reaction.Target.WAID, Emoji: msg.Reaction.Emoji}
	}
	if msg.Edit != nil {
		p.Kind, p.Text, p.EditOf = wabsync.KindText, msg.Edit.Text, msg.Edit.Target.WAID
	}
	if msg.Revoke != nil {
		p.RevokeOf = msg.Revoke.WAID
	}
	ok := wabsync.SendResult{Timestamp: now}
	switch to {
	case NumberNeverDelivers:
		return ok, nil
	case NumberEcho, NumberReadsAtOnce:
		// Simulated contacts answer through this device's own mailbox.
		receipts := []wabsync.MessageStatus{wabsync.MsgDelivered}
		if to == NumberReadsAtOnce {
			receipts = append(receipts, wabsync.MsgRead)
		}
		for _, st := range receipts {
			if err := ob.add(from, &Packet{Type: "receipt", From: to, At: now, WAIDs: []string{msg.WAID}, Status: st}); err != nil {
				return wabsync.SendResult{}, err
			}
		}
		if to == NumberEcho && msg.Reaction == nil && msg.Edit == nil && msg.Revoke == nil {
			echo := *p
			echo.WAID, echo.From, echo.PushName = "ECHO"+msg.WAID, to, "Echo"
			if err := ob.add(from, &echo); err != nil {
				return wabsync.SendResult{}, err
			}
		}
		return ok, nil
	}
	used, known := inUse[to]
	if !known {
		var err error
		if used, err = e.n.mb.PhoneInUse(ctx, to); err != nil {
			return wabsync.SendResult{}, err
		}
		inUse[to] = used
	}
	if !used {
		// A number outside this deployment: it is on WhatsApp and its
		// phone gets the message, but nobody reads it.
		return ok, ob.add(from, &Packet{Type: "receipt", From: to, At: now, WAIDs: []string{msg.WAID}, Status: wabsync.MsgDelivered})
	}
	return ok, ob.add(to, p)
}

// MarkRead sends read receipts to the sender of the messages.
func (e *Engine) MarkRead(ctx context.Context, chat, sender string, waIDs []string, at time.Time) error {
	from, ok := e.me()
	if !ok {
		return errOffline
	}
	to := PhoneOf(sender)
	if to == "" {
		to = PhoneOf(chat)
	}
	if to == "" || len(waIDs) == 0 {
		return nil
	}
	used, err := e.n.mb.PhoneInUse(ctx, to)
	if err != nil || !used {
		return err
	}
	return e.n.post(ctx, to, &Packet{Type: "receipt", From: from, At: at, WAIDs: waIDs, Status: wabsync.MsgRead})
}

// SendPresence shows the state (typing, recording, paused) to the chat's
// sandbox session if it is online now, as presence.update; presence is not
// kept for later, as on WhatsApp.
func (e *Engine) SendPresence(ctx context.Context, chat, state string) error {
	from, ok := e.me()
	if !ok {
		return errOffline
	}
	to := PhoneOf(chat)
	e.n.mu.Lock()
	peer := e.n.online[to]
	e.n.mu.Unlock()
	if to == "" || peer == nil || peer == e {
		return nil
	}
	// Best effort, as on WhatsApp: a recipient that cannot take it now misses it.
	_ = peer.o.Handler(ctx, wabsync.EnginePresence{Chat: JID(from), From: JID(from), State: state})
	return nil
}

// CheckPhones says every number is on WhatsApp except NumberNotOnWhatsApp.
func (e *Engine) CheckPhones(ctx context.Context, phones []string) ([]wabsync.PhoneCheck, error) {
	out := make([]wabsync.PhoneCheck, 0, len(phones))
	for _, p := range phones {
		c := wabsync.PhoneCheck{Phone: p, OnWhatsApp: p != NumberNotOnWhatsApp}
		if c.OnWhatsApp {
			c.JID = JID(p)
		}
		out = append(out, c)
	}
	return out, nil
}

// DownloadMedia is never needed: sandbox media is in the blob store already.
func (e *Engine) DownloadMedia(ctx context.Context, ref string) (io.ReadCloser, error) {
	return nil, errors.New("sandbox: media is stored with the message")
}

// kick drains the mailbox in the background (coalescing repeated kicks).
func (e *Engine) kick() {
	e.kickMu.Lock()
	if e.kicking {
		e.kickMore = true
		e.kickMu.Unlock()
		return
	}
	e.kicking = true
	e.kickMu.Unlock()
	go func() {
		for {
			e.drain()
			e.kickMu.Lock()
			if !e.kickMore {
				e.kicking = false
				e.kickMu.Unlock()
				return
			}
			e.kickMore = false
			e.kickMu.Unlock()
		}
	}()
}

// drainBatch is how much mail one transaction of the session stores: small
// enough that the change stays short (every other write of the server waits
// behind it), large enough to share the transaction's cost.
const drainBatch = 32

// drain hands the device everything its mailbox holds, in order, a batch
// at a time: the session stores a batch in one transaction, then the
// senders get their receipts, then the batch leaves the mailbox. A crash in
// between hands the batch over again; the session ignores what it has.
func (e *Engine) drain() {
	e.drainMu.Lock()
	defer e.drainMu.Unlock()
	ctx := context.Background()
	for {
		me, ok := e.me()
		if !ok {
			return
		}
		ids, bodies, err := e.n.mb.TakeMail(ctx, me, drainBatch)
		if err != nil || len(ids) == 0 {
			return
		}
		var evs []wabsync.EngineEvent
		var receipts outbox
		inUse := map[string]bool{}
		for _, b := range bodies {
			var p Packet
			if err := jsonUnmarshal(b, &p); err != nil {
				continue // unreadable mail is dropped, not retried forever
			}
			ev, ack := e.toEvent(&p)
			if ev == nil {
				continue
			}
			evs = append(evs, ev)
			if !ack {
				continue
			}
			// The device got it: tell the sender, if it is one of ours.
			used, known := inUse[p.From]
			if !known {
				used, _ = e.n.mb.PhoneInUse(ctx, p.From)
				inUse[p.From] = used
			}
			if used {
				now := e.n.opts.Now()
				_ = receipts.add(p.From, &Packet{Type: "receipt", From: me, At: now, WAIDs: []string{p.WAID}, Status: wabsync.MsgDelivered})
				if e.o.Config.AutoRead {
					_ = receipts.add(p.From, &Packet{Type: "receipt", From: me, At: now, WAIDs: []string{p.WAID}, Status: wabsync.MsgRead})
				}
			}
		}
		if len(evs) > 0 {
			if err := e.o.Handler(ctx, wabsync.EngineBatch{Events: evs}); err != nil {
				if e.o.Logger != nil {
					e.o.Logger.Warn("sandbox: delivery to the session failed; kept in the mailbox", "err", err)
				}
				return
			}
		}
		// The receipts go out as the batch leaves the mailbox: one write.
		if err := e.n.mb.ReplaceMail(ctx, ids, receipts.to, receipts.bodies); err != nil {
			return
		}
		e.n.wakeAll(&receipts)
		if len(ids) < drainBatch {
			return
		}
	}
}

// toEvent turns a packet into the event the session gets, and says whether
// the sender should get a delivery receipt for it.
func (e *Engine) toEvent(p *Packet) (wabsync.EngineEvent, bool) {
	switch p.Type {
	case "receipt":
		return wabsync.EngineReceipt{Chat: JID(p.From), Sender: JID(p.From), WAIDs: p.WAIDs, Status: p.Status, At: p.At}, false
	case "message":
		m := wabsync.InboundMessage{WAID: p.WAID, Chat: JID(p.From), FromJID: JID(p.From), FromPhone: p.From, PushName: p.PushName,
			Timestamp: p.At, Kind: p.Kind, Text: p.Text, Caption: p.Caption, Location: p.Location, Contacts: p.Contacts,
			ReplyTo: p.ReplyTo, Mentions: p.Mentions, Reaction: p.Reaction, EditOf: p.EditOf, RevokeOf: p.RevokeOf}
		if m.Kind == "" {
			m.Kind = wabsync.KindText
		}
		if p.Media != nil {
			m.Media = &wabsync.InboundMedia{MimeType: p.Media.MimeType, Size: p.Media.Size, SHA256: p.Media.SHA256,
				Filename: p.Media.Filename, BlobKey: p.BlobKey}
		}
		return wabsync.EngineMessage{Msg: m}, m.Reaction == nil && m.EditOf == "" && m.RevokeOf == ""
	}
	return nil, false
}

// deliver hands one packet to the session at once (sandbox inbound).
func (e *Engine) deliver(ctx context.Context, body []byte) error {
	var p Packet
	if err := jsonUnmarshal(body, &p); err != nil {
		return nil
	}
	ev, _ := e.toEvent(&p)
	if ev == nil {
		return nil
	}
	return e.o.Handler(ctx, ev)
}
