package whatsmeow

import (
	"context"
	"encoding/hex"
	"strings"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wabsync/wabsync"
)

// inbound turns a whatsmeow message event into WabSync's InboundMessage.
// ok is false for what WabSync does not report as a message: protocol
// messages other than edits and revokes (history sync notices, key shares,
// disappearing-timer changes…), status updates (stories), and kinds WabSync
// does not model (polls, buttons, payments…), which are logged.
func (e *Engine) inbound(ctx context.Context, cli waClient, evt *events.Message) (*wabsync.InboundMessage, bool) {
	info := evt.Info
	if info.Chat.Server == types.BroadcastServer && info.Chat.User == types.StatusBroadcastJID.User {
		return nil, false
	}
	m := evt.Message
	if m == nil {
		m = evt.UnwrapRaw().Message
	}
	if m == nil {
		return nil, false
	}
	r := resolver{lids: cli.Device().LIDs}
	from := r.identify(ctx, info.Sender, info.SenderAlt)
	out := &wabsync.InboundMessage{
		WAID:      info.ID,
		Chat:      r.chatJID(ctx, info.Chat, chatAlt(info.MessageSource)),
		FromJID:   from.JID,
		FromLID:   from.LID,
		FromPhone: from.Phone,
		PushName:  info.PushName,
		FromMe:    info.IsFromMe,
		Timestamp: info.Timestamp.UTC(),
	}
	if !fillContent(out, m) {
		e.log.Info("whatsmeow: inbound message of a kind WabSync does not handle", "wa_id", info.ID, "type", info.Type, "media_type", info.MediaType)
		return nil, false
	}
	return out, true
}

// fillContent sets the kind and content of out from m (already unwrapped
// from ephemeral, view-once, document-with-caption and edit wrappers). It
// returns false when m is nothing WabSync reports.
func fillContent(out *wabsync.InboundMessage, m *waE2E.Message) bool {
	if ci := contextInfo(m); ci != nil {
		out.ReplyTo = ci.GetStanzaID()
		out.Mentions = append([]string(nil), ci.GetMentionedJID()...)
	}
	switch {
	case m.Conversation != nil:
		out.Kind = wabsync.KindText
		out.Text = m.GetConversation()
	case m.ExtendedTextMessage != nil:
		out.Kind = wabsync.KindText
		out.Text = m.GetExtendedTextMessage().GetText()
	case m.ImageMessage != nil:
		im := m.GetImageMessage()
		out.Kind = wabsync.KindImage
		out.Caption = im.GetCaption()
		out.Media = inboundMedia(im, mediaImage, im.GetMimetype(), im.GetFileLength(), "")
	case m.VideoMessage != nil:
		vm := m.GetVideoMessage()
		out.Kind = wabsync.KindVideo
		out.Caption = vm.GetCaption()
		out.Media = inboundMedia(vm, mediaVideo, vm.GetMimetype(), vm.GetFileLength(), "")
	case m.AudioMessage != nil:
		am := m.GetAudioMessage()
		out.Kind = wabsync.KindAudio
		if am.GetPTT() {
			out.Kind = wabsync.KindVoice
		}
		out.Media = inboundMedia(am, mediaAudio, am.GetMimetype(), am.GetFileLength(), "")
	case m.DocumentMessage != nil:
		dm := m.GetDocumentMessage()
		out.Kind = wabsync.KindDocument
		out.Caption = dm.GetCaption()
		out.Media = inboundMedia(dm, mediaDocument, dm.GetMimetype(), dm.GetFileLength(), dm.GetFileName())
	case m.StickerMessage != nil:
		sm := m.GetStickerMessage()
		out.Kind = wabsync.KindSticker
		out.Media = inboundMedia(sm, mediaSticker, sm.GetMimetype(), sm.GetFileLength(), "")
	case m.LocationMessage != nil:
		lm := m.GetLocationMessage()
		out.Kind = wabsync.KindLocation
		out.Location = &wabsync.Location{Latitude: lm.GetDegreesLatitude(), Longitude: lm.GetDegreesLongitude(), Name: lm.GetName(), Address: lm.GetAddress()}
	case m.LiveLocationMessage != nil:
		lm := m.GetLiveLocationMessage()
		out.Kind = wabsync.KindLocation
		out.Caption = lm.GetCaption()
		out.Location = &wabsync.Location{Latitude: lm.GetDegreesLatitude(), Longitude: lm.GetDegreesLongitude()}
	case m.ContactMessage != nil:
		out.Kind = wabsync.KindContact
		out.Contacts = []wabsync.Contact{inboundContact(m.GetContactMessage())}
	case m.ContactsArrayMessage != nil:
		out.Kind = wabsync.KindContact
		for _, c := range m.GetContactsArrayMessage().GetContacts() {
			out.Contacts = append(out.Contacts, inboundContact(c))
		}
	case m.ReactionMessage != nil:
		rm := m.GetReactionMessage()
		out.Kind = wabsync.KindReaction
		out.Reaction = &wabsync.InboundReaction{TargetWAID: rm.GetKey().GetID(), Emoji: rm.GetText()}
	case m.ProtocolMessage != nil:
		pm := m.GetProtocolMessage()
		switch pm.GetType() {
		case waE2E.ProtocolMessage_REVOKE:
			out.Kind = wabsync.KindText // as the sandbox reports revokes
			out.RevokeOf = pm.GetKey().GetID()
		case waE2E.ProtocolMessage_MESSAGE_EDIT:
			out.Kind = wabsync.KindText
			out.EditOf = pm.GetKey().GetID()
			out.Text = editedText(pm.GetEditedMessage())
		default:
			return false
		}
		if out.RevokeOf == "" && out.EditOf == "" {
			return false
		}
	default:
		return false
	}
	return true
}

// editedText is the new text of an edit: the text, or the new caption of a
// media message.
func editedText(m *waE2E.Message) string {
	switch {
	case m == nil:
		return ""
	case m.Conversation != nil:
		return m.GetConversation()
	case m.ExtendedTextMessage != nil:
		return m.GetExtendedTextMessage().GetText()
	case m.ImageMessage != nil:
		return m.GetImageMessage().GetCaption()
	case m.VideoMessage != nil:
		return m.GetVideoMessage().GetCaption()
	case m.DocumentMessage != nil:
		return m.GetDocumentMessage().GetCaption()
	}
	return ""
}

// contextInfo returns the ContextInfo of whichever part of m carries one.
func contextInfo(m *waE2E.Message) *waE2E.ContextInfo {
	switch {
	case m.ExtendedTextMessage != nil:
		return m.ExtendedTextMessage.GetContextInfo()
	case m.ImageMessage != nil:
		return m.ImageMessage.GetContextInfo()
	case m.VideoMessage != nil:
		return m.VideoMessage.GetContextInfo()
	case m.AudioMessage != nil:
		return m.AudioMessage.GetContextInfo()
	case m.DocumentMessage != nil:
		return m.DocumentMessage.GetContextInfo()
	case m.StickerMessage != nil:
		return m.StickerMessage.GetContextInfo()
	case m.LocationMessage != nil:
		return m.LocationMessage.GetContextInfo()
	case m.LiveLocationMessage != nil:
		return m.LiveLocationMessage.GetContextInfo()
	case m.ContactMessage != nil:
		return m.ContactMessage.GetContextInfo()
	case m.ContactsArrayMessage != nil:
		return m.ContactsArrayMessage.GetContextInfo()
	}
	return nil
}

// downloadable is what whatsmeow's media messages have in common.
type downloadable interface {
	GetDirectPath() string
	GetMediaKey() []byte
	GetFileSHA256() []byte
	GetFileEncSHA256() []byte
}

func inboundMedia(d downloadable, kind, mime string, size uint64, filename string) *wabsync.InboundMedia {
	ref := mediaRef{
		DirectPath:    d.GetDirectPath(),
		MediaKey:      d.GetMediaKey(),
		FileEncSHA256: d.GetFileEncSHA256(),
		FileSHA256:    d.GetFileSHA256(),
		Length:        size,
		Type:          kind,
		MimeType:      mime,
	}
	return &wabsync.InboundMedia{
		MimeType: mime,
		Size:     int64(size),
		SHA256:   hex.EncodeToString(d.GetFileSHA256()),
		Filename: filename,
		Ref:      ref.encode(),
	}
}

func inboundContact(c *waE2E.ContactMessage) wabsync.Contact {
	return wabsync.Contact{Name: c.GetDisplayName(), Phones: vcardPhones(c.GetVcard()), VCard: c.GetVcard()}
}

// vcardPhones returns the phone numbers of a vCard in E.164 form, taking
// WhatsApp's waid parameter (the number without formatting) when present.
func vcardPhones(vcard string) []string {
	var phones []string
	for _, line := range strings.Split(strings.ReplaceAll(vcard, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		params := strings.Split(name, ";")
		prop := strings.ToUpper(params[0])
		if i := strings.LastIndexByte(prop, '.'); i >= 0 { // item1.TEL
			prop = prop[i+1:]
		}
		if prop != "TEL" {
			continue
		}
		number := ""
		for _, p := range params[1:] {
			if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(k, "waid") {
				number = digitsOnly(v)
			}
		}
		if number == "" {
			number = digitsOnly(value)
		}
		if number != "" {
			phones = append(phones, "+"+number)
		}
	}
	return phones
}
