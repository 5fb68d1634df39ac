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
// presence. It returns only once the change is stored, so the engine may
// acknowledge to its network after it.
func (m *Manager) handleData(ctx context.Context, r *runner, ev wabsync.EngineEvent) error {
	r.mu.Lock()
	stopped, phone, cfg := r.stopped, r.phone, r.cfg
	r.mu.Unlock()
	if stopped {
		return errStopped
	}
	switch ev := ev.(type) {
	case wabsync.EngineMessage:
		return m.storeInbound(ctx, r.id, phone, cfg, &ev.Msg)
	case wabsync.EngineReceipt:
		if ev.FromMe {
			_, err := m.db.MarkInboundRead(ctx, r.id, ev.Chat, "", ev.WAIDs)
			return err
		}
		return m.db.ApplyReceipt(ctx, r.id, ev.WAIDs, ev.Status, ev.At)
	case wabsync.EngineUndecryptable:
		msg := &wabsync.Message{SessionID: r.id, Direction: wabsync.DirectionIn, Chat: ev.Chat, WAID: ev.WAID,
			From: ev.FromPhone, FromJID: ev.FromJID, FromLID: ev.FromLID, To: phone, ToJID: jidOf(phone), Kind: wabsync.KindText,
			Error: &wabsync.MessageError{Code: "UNDECRYPTABLE", Message: "WhatsApp could not decrypt this message (shown on phones as \"Waiting for this message\"); the sender's phone usually resends it."}}
		if !ev.At.IsZero() {
			t := ev.At
			msg.Timestamp = &t
		}
		_, err := m.db.StoreInbound(ctx, msg, nil)
		return err
	case wabsync.EnginePresence:
		return m.db.Update(ctx, func(tx *storeTx) error {
			_, err := tx.AddEvent(&r.id, wabsync.EventPresenceUpdate, map[string]string{"chat": ev.Chat, "from": ev.From, "state": ev.State})
			return err
		})
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

func (m *Manager) storeInbound(ctx context.Context, sessionID, phone string, cfg wabsync.SessionConfig, in *wabsync.InboundMessage) error {
	at := in.Timestamp
	if at.IsZero() {
		at = time.Now().UTC()
	}
	switch {
	case in.Reaction != nil:
		target, err := m.db.ModifyByWAID(ctx, sessionID, in.Reaction.TargetWAID, wabsync.EventMessageReaction, func(t *wabsync.Message) {
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
		target, err := m.db.ModifyByWAID(ctx, sessionID, in.EditOf, wabsync.EventMessageEdited, func(t *wabsync.Message) {
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
		_, err := m.db.ModifyByWAID(ctx, sessionID, in.RevokeOf, wabsync.EventMessageRevoked, func(t *wabsync.Message) {
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
		if q, err := m.db.FindByWAID(ctx, sessionID, in.ReplyTo); err == nil && q != nil {
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
	_, err := m.db.StoreInbound(ctx, msg, contact)
	return err
}
