package whatsmeow

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"

	"github.com/wabsync/wabsync"
)

// isPN reports whether jid is a phone-number user JID.
func isPN(jid types.JID) bool {
	return jid.User != "" && (jid.Server == types.DefaultUserServer || jid.Server == types.HostedServer)
}

// isLID reports whether jid is a LID ("…@lid").
func isLID(jid types.JID) bool {
	return jid.User != "" && (jid.Server == types.HiddenUserServer || jid.Server == types.HostedLIDServer)
}

// phoneOf returns the E.164 number of a phone-number JID, or "".
func phoneOf(jid types.JID) string {
	if !isPN(jid) {
		return ""
	}
	return "+" + jid.User
}

// identity is one WhatsApp user as WabSync reports it.
type identity struct {
	JID   string // the phone-number JID when known, else the LID
	LID   string
	Phone string // E.164 when known
}

// resolver turns LIDs into phone numbers and back through the device's LID
// map (filled by whatsmeow from messages, usync answers and history sync).
type resolver struct {
	lids store.LIDStore
}

// identify returns who jid (with alt, WhatsApp's alternative address for the
// same user, possibly empty) is: both the phone-number JID and the LID where
// known. Lookups that fail leave a field empty; they never fail the caller.
func (r resolver) identify(ctx context.Context, jid, alt types.JID) identity {
	jid, alt = jid.ToNonAD(), alt.ToNonAD()
	var pn, lid types.JID
	switch {
	case isPN(jid):
		pn = jid
		if isLID(alt) {
			lid = alt
		}
	case isLID(jid):
		lid = jid
		if isPN(alt) {
			pn = alt
		}
	default:
		if jid.IsEmpty() {
			return identity{}
		}
		return identity{JID: jid.String()}
	}
	if r.lids != nil {
		if pn.IsEmpty() {
			if got, err := r.lids.GetPNForLID(ctx, lid); err == nil && isPN(got) {
				pn = got.ToNonAD()
			}
		} else if lid.IsEmpty() {
			if got, err := r.lids.GetLIDForPN(ctx, pn); err == nil && isLID(got) {
				lid = got.ToNonAD()
			}
		}
	}
	id := identity{}
	if !lid.IsEmpty() {
		id.LID = lid.String()
	}
	if !pn.IsEmpty() {
		id.JID = pn.String()
		id.Phone = phoneOf(pn)
	} else {
		id.JID = id.LID
	}
	return id
}

// chatJID returns the JID WabSync uses for a chat: groups and others as they
// are; a direct chat addressed by LID as the phone-number JID when known, so
// that a conversation has one JID whichever addressing WhatsApp used.
func (r resolver) chatJID(ctx context.Context, chat, alt types.JID) string {
	chat = chat.ToNonAD()
	if !isLID(chat) {
		return chat.String()
	}
	return r.identify(ctx, chat, alt).JID
}

// parseTo parses a JID given by WabSync (the "to" of a message, a chat).
func parseTo(s string) (types.JID, error) {
	if s == "" {
		return types.EmptyJID, errors.New("empty JID")
	}
	if strings.HasPrefix(s, "+") {
		digits := strings.TrimPrefix(s, "+")
		if digits == "" || strings.Trim(digits, "0123456789") != "" {
			return types.EmptyJID, errors.New("invalid phone number")
		}
		return types.NewJID(digits, types.DefaultUserServer), nil
	}
	jid, err := types.ParseJID(s)
	if err != nil {
		return types.EmptyJID, err
	}
	if jid.User == "" && jid.Server != types.DefaultUserServer {
		return types.EmptyJID, errors.New("JID without user")
	}
	if jid.Server == types.LegacyUserServer {
		jid.Server = types.DefaultUserServer
	}
	return jid.ToNonAD(), nil
}

// digitsOnly keeps the digits of a phone number.
func digitsOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// validateProxy checks a session's proxy URL the way whatsmeow will use it.
func validateProxy(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https", "socks5":
	default:
		return errors.New("unsupported proxy scheme")
	}
	if u.Host == "" {
		return errors.New("proxy without host")
	}
	return nil
}

// invalidJID is the error for a JID WabSync passed that whatsmeow cannot use.
func invalidJID(field, value string) error {
	return &wabsync.Error{Code: wabsync.EValidation, Message: "Not a valid WhatsApp JID: " + value,
		Details: map[string]string{field: "must be a phone number in E.164 form or a WhatsApp JID"}}
}
