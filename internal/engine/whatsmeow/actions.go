package whatsmeow

import (
	"context"
	"strings"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/wabsync/wabsync"
)

// MarkRead sends a read receipt for inbound messages of chat. In groups
// sender (the messages' author) is required by WhatsApp; in direct chats it
// may be empty.
func (e *Engine) MarkRead(ctx context.Context, chat, sender string, waIDs []string, at time.Time) error {
	if len(waIDs) == 0 {
		return nil
	}
	cli, _, err := e.loggedInClient()
	if err != nil {
		return err
	}
	chatJID, err := parseTo(chat)
	if err != nil {
		return invalidJID("chat", chat)
	}
	var senderJID types.JID
	if sender != "" {
		if senderJID, err = parseTo(sender); err != nil {
			return invalidJID("sender", sender)
		}
	}
	ids := make([]types.MessageID, len(waIDs))
	copy(ids, waIDs)
	if at.IsZero() {
		at = e.f.opts.now()
	}
	if err := cli.MarkRead(ctx, ids, at, chatJID, senderJID); err != nil {
		e.log.Warn("whatsmeow: mark read", "err", err)
		return sendError(err)
	}
	return nil
}

// SendPresence tells chat that this account is typing, recording (a voice
// note) or paused.
func (e *Engine) SendPresence(ctx context.Context, chat, state string) error {
	var (
		cp    types.ChatPresence
		media types.ChatPresenceMedia
	)
	switch state {
	case PresenceTyping:
		cp, media = types.ChatPresenceComposing, types.ChatPresenceMediaText
	case PresenceRecording:
		cp, media = types.ChatPresenceComposing, types.ChatPresenceMediaAudio
	case PresencePaused:
		cp, media = types.ChatPresencePaused, types.ChatPresenceMediaText
	default:
		return &wabsync.Error{Code: wabsync.EValidation, Message: "Unknown presence state.",
			Details: map[string]string{"state": "must be typing, recording or paused"}}
	}
	cli, _, err := e.loggedInClient()
	if err != nil {
		return err
	}
	to, err := parseTo(chat)
	if err != nil {
		return invalidJID("to", chat)
	}
	if err := cli.SendChatPresence(ctx, to, cp, media); err != nil {
		e.log.Warn("whatsmeow: chat presence", "err", err)
		return sendError(err)
	}
	return nil
}

// checkBatch is how many numbers go in one usync query.
const checkBatch = 50

// CheckPhones asks WhatsApp which numbers (E.164) have an account. JID is the
// phone-number JID to send to.
func (e *Engine) CheckPhones(ctx context.Context, phones []string) ([]wabsync.PhoneCheck, error) {
	cli, _, err := e.loggedInClient()
	if err != nil {
		return nil, err
	}
	out := make([]wabsync.PhoneCheck, len(phones))
	for i, p := range phones {
		out[i] = wabsync.PhoneCheck{Phone: p}
	}
	for start := 0; start < len(phones); start += checkBatch {
		end := min(start+checkBatch, len(phones))
		query := make([]string, 0, end-start)
		index := make(map[string][]int, end-start)
		for i := start; i < end; i++ {
			d := digitsOnly(phones[i])
			if d == "" {
				continue
			}
			q := "+" + d
			if _, seen := index[q]; !seen {
				query = append(query, q)
			}
			index[q] = append(index[q], i)
		}
		if len(query) == 0 {
			continue
		}
		res, err := cli.IsOnWhatsApp(ctx, query)
		if err != nil {
			e.log.Warn("whatsmeow: check phones", "err", err)
			return nil, sendError(err)
		}
		for _, r := range res {
			q := r.Query
			if !strings.HasPrefix(q, "+") {
				q = "+" + q
			}
			jid := r.PhoneNumber
			if !isPN(jid) {
				jid = r.JID
			}
			for _, i := range index[q] {
				out[i].OnWhatsApp = r.IsIn
				if r.IsIn && isPN(jid) {
					out[i].JID = jid.ToNonAD().String()
				}
			}
		}
	}
	return out, nil
}
