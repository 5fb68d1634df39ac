package session

import (
	"context"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// handleData stores what an engine received: messages (and the reactions,
// edits and revokes they carry), receipts, undecryptable messages and
// presence — one event, or an EngineBatch of them in one transaction. It
// returns only once the change is stored, so the engine may acknowledge to its
// network after it.
func (m *Manager) handleData(ctx context.Context, r *runner, ev wabsync.EngineEvent) error {
	r.mu.Lock()
	stopped, phone, cfg := r.stopped, r.phone, r.cfg
	r.mu.Unlock()
	if stopped {
		return errStopped
	}
	evs := []wabsync.EngineEvent{ev}
	if b, ok := ev.(wabsync.EngineBatch); ok {
		evs = b.Events
	}
	waIDs := lookedUp(evs)
	return m.db.Update(store.Background(ctx), func(tx *store.Tx) error {
		if err := tx.PrefetchMessages(r.id, nil, waIDs); err != nil {
			return err
		}
		for _, ev := range evs {
			if err := m.applyData(tx, r.id, phone, cfg, ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// lookedUp returns the WhatsApp ids of the messages that applying evs
// looks up, for PrefetchMessages.
func lookedUp(evs []wabsync.EngineEvent) []string {
	var ids []string
	for _, ev := range evs {
		switch ev := ev.(type) {
		case wabsync.EngineMessage:
			in := &ev.Msg
			ids = append(ids, in.WAID)
			for _, w := range []string{in.EditOf, in.RevokeOf, in.ReplyTo} {
				if w != "" {
					ids = append(ids, w)
				}
			}
			if in.Reaction != nil && in.Reaction.TargetWAID != "" {
				ids = append(ids, in.Reaction.TargetWAID)
			}
		case wabsync.EngineReceipt:
			if !ev.FromMe {
				ids = append(ids, ev.WAIDs...)
			}
		case wabsync.EngineUndecryptable:
			ids = append(ids, ev.WAID)
		}
	}
	return ids
}

func (m *Manager) applyData(tx *store.Tx, id, phone string, cfg wabsync.SessionConfig, ev wabsync.EngineEvent) error {
	switch ev := ev.(type) {
	case wabsync.EngineMessage:
		return storeInbound(tx, id, phone, cfg, &ev.Msg)
	case wabsync.EngineReceipt:
		if ev.FromMe {
			_, err := tx.MarkInboundRead(id, ev.Chat, "", ev.WAIDs)
			return err
		}
		return tx.ApplyReceipt(id, ev.WAIDs, ev.Status, ev.At)
	case wabsync.EngineUndecryptable:
		msg := &wabsync.Message{SessionID: id, Direction: wabsync.DirectionIn, Chat: ev.Chat, WAID: ev.WAID,
			From: ev.FromPhone, FromJID: ev.FromJID, FromLID: ev.FromLID, To: phone, ToJID: jidOf(phone), Kind: wabsync.KindText,
			Error: &wabsync.MessageError{Code: "UNDECRYPTABLE", Message: "WhatsApp could not decrypt this message (shown on phones as \"Waiting for this message\"); the sender's phone usually resends it."}}
		if !ev.At.IsZero() {
			t := ev.At
			msg.Timestamp = &t
		}
		_, err := tx.StoreInbound(msg, nil)
		return err
	case wabsync.EnginePresence:
		_, err := tx.AddEvent(&id, wabsync.EventPresenceUpdate, map[string]string{"chat": ev.Chat, "from": ev.From, "state": ev.State})
		return err
	}
	return nil
}

type storeTx = store.Tx

type stoppedError struct{}

func (stoppedError) Error() string { return "session: stopped" }

var errStopped error = stoppedError{}

func jidOf(phone string) string {
	if phone == "" {
		return ""
	}
	return strings.TrimPrefix(phone, "+") + "@s.whatsapp.net"
}

func storeInbound(tx *store.Tx, sessionID, phone string, cfg wabsync.SessionConfig, in *wabsync.InboundMessage) error {
	at := in.Timestamp
	if at.IsZero() {
		at = time.Now().UTC()
	}
	switch {
	case in.Reaction != nil:
		target, err := tx.ModifyByWAID(sessionID, in.Reaction.TargetWAID, wabsync.EventMessageReaction, func(t *wabsync.Message) {
			from := in.FromPhone
			if from == "" {
				from = in.FromJID
			}
			kept := t.Reactions[:0]
			for _, re := range t.Reactions {
				if re.From != from {
					kept = append(kept, re)
				}
			}
			t.Reactions = kept
			if in.Reaction.Emoji != "" {
				t.Reactions = append(t.Reactions, wabsync.ReactionEntry{From: from, Emoji: in.Reaction.Emoji, At: at})
			}
		})
		if err != nil || target != nil {
			return err
		}
		// A reaction to a message this session does not have: keep it as a
		// message of its own so that it is not lost.
	case in.EditOf != "":
		target, err := tx.ModifyByWAID(sessionID, in.EditOf, wabsync.EventMessageEdited, func(t *wabsync.Message) {
			if t.Caption != "" && t.Text == "" {
				t.Caption = in.Text
			} else {
				t.Text = in.Text
			}
			t.Edited = true
		})
		if err != nil || target != nil {
			return err
		}
		return nil
	case in.RevokeOf != "":
		_, err := tx.ModifyByWAID(sessionID, in.RevokeOf, wabsync.EventMessageRevoked, func(t *wabsync.Message) {
			t.Revoked = true
			t.Text, t.Caption = "", ""
		})
		return err
	}
	msg := &wabsync.Message{
		SessionID: sessionID, Direction: wabsync.DirectionIn, Chat: in.Chat, WAID: in.WAID,
		From: in.FromPhone, FromJID: in.FromJID, FromLID: in.FromLID, To: phone, ToJID: jidOf(phone),
		Kind: in.Kind, Text: in.Text, Caption: in.Caption, Location: in.Location, Contacts: in.Contacts, Mentions: in.Mentions,
	}
	if in.FromMe {
		msg.Direction = wabsync.DirectionOut
	}
	t := at
	msg.Timestamp = &t
	if in.Reaction != nil {
		msg.Kind = wabsync.KindReaction
		msg.Reaction = &wabsync.Reaction{MessageID: "", Emoji: in.Reaction.Emoji}
	}
	if in.Media != nil {
		msg.Media = &wabsync.Media{MimeType: in.Media.MimeType, Size: in.Media.Size, SHA256: in.Media.SHA256,
			Filename: in.Media.Filename, BlobKey: in.Media.BlobKey, Ref: in.Media.Ref}
	}
	if in.ReplyTo != "" {
		if q, err := tx.FindByWAID(sessionID, in.ReplyTo); err == nil && q != nil {
			msg.ReplyTo = q.ID
		}
	}
	if cfg.AutoRead {
		msg.Status = wabsync.MsgRead
	}
	contact := &wabsync.ContactInfo{JID: in.FromJID, Phone: in.FromPhone, LID: in.FromLID, PushName: in.PushName}
	if in.FromMe || in.FromJID == "" {
		contact = nil
	}
	_, err := tx.StoreInbound(msg, contact)
	return err
}
