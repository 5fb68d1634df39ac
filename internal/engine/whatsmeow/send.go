package whatsmeow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"

	"github.com/wabsync/wabsync"
)

// voiceMimeType is the only type WhatsApp plays as a voice note.
const voiceMimeType = "audio/ogg; codecs=opus"

// Send sends one message with the WhatsApp message id msg.WAID, so that
// sending the same message again (after a crash) reuses the id and the
// recipient sees it once.
//
// To a phone-number JID not known to be on WhatsApp, the number is checked
// first (IsOnWhatsApp); a number that is not gives NOT_ON_WHATSAPP without
// sending. Media is streamed from msg.Media.Open, encrypted into a temporary
// file and uploaded, then sent. Errors are *wabsync.EngineError with the
// message error codes of package wabsync (see sendError).
func (e *Engine) Send(ctx context.Context, msg *wabsync.OutgoingMessage) (wabsync.SendResult, error) {
	if msg == nil || msg.WAID == "" {
		return wabsync.SendResult{}, &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: "the message has no WhatsApp id", Permanent: true}
	}
	cli, dev, err := e.loggedInClient()
	if err != nil {
		return wabsync.SendResult{}, err
	}
	to, err := parseTo(msg.To)
	if err != nil {
		return wabsync.SendResult{}, &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: "not a valid recipient: " + msg.To, Permanent: true}
	}
	if isPN(to) {
		if err := e.checkRecipient(ctx, cli, to); err != nil {
			return wabsync.SendResult{}, err
		}
	}
	own := dev.GetJID().ToNonAD()
	m, err := e.buildMessage(ctx, cli, own, to, msg)
	if err != nil {
		return wabsync.SendResult{}, err
	}
	resp, err := cli.SendMessage(ctx, to, m, whatsmeow.SendRequestExtra{ID: types.MessageID(msg.WAID)})
	if err != nil {
		ee := sendError(err)
		e.log.Warn("whatsmeow: send failed", "wa_id", msg.WAID, "code", ee.Code, "err", err)
		return wabsync.SendResult{}, ee
	}
	ts := resp.Timestamp
	if ts.IsZero() {
		ts = e.f.opts.now()
	}
	return wabsync.SendResult{Timestamp: ts.UTC()}, nil
}

// checkRecipient makes sure a phone number is on WhatsApp before sending to
// it. A number whose LID is already known (whatsmeow learnt it from a
// message or an earlier check) is on WhatsApp and is not checked again.
func (e *Engine) checkRecipient(ctx context.Context, cli waClient, to types.JID) error {
	if lids := cli.Device().LIDs; lids != nil {
		if lid, err := lids.GetLIDForPN(ctx, to); err == nil && !lid.IsEmpty() {
			return nil
		}
	}
	res, err := cli.IsOnWhatsApp(ctx, []string{"+" + to.User})
	if err != nil {
		return sendError(err)
	}
	for _, r := range res {
		if r.IsIn {
			return nil
		}
	}
	return &wabsync.EngineError{Code: wabsync.MsgErrNotOnWhatsApp, Message: phoneOf(to) + " is not on WhatsApp", Permanent: true}
}

// buildMessage builds the protobuf for msg (uploading its media first).
func (e *Engine) buildMessage(ctx context.Context, cli waClient, own, to types.JID, msg *wabsync.OutgoingMessage) (*waE2E.Message, error) {
	switch {
	case msg.Reaction != nil:
		return buildReaction(own, to, msg.Reaction, e.f.opts.now()), nil
	case msg.Edit != nil:
		return buildEdit(to, msg.Edit, e.f.opts.now()), nil
	case msg.Revoke != nil:
		return buildRevoke(own, to, *msg.Revoke), nil
	}
	switch msg.Kind {
	case wabsync.KindText:
		return buildText(own, msg), nil
	case wabsync.KindLocation:
		if msg.Location == nil {
			return nil, invalidMessage("a location message needs a location")
		}
		return &waE2E.Message{LocationMessage: &waE2E.LocationMessage{
			DegreesLatitude:  proto.Float64(msg.Location.Latitude),
			DegreesLongitude: proto.Float64(msg.Location.Longitude),
			Name:             optString(msg.Location.Name),
			Address:          optString(msg.Location.Address),
			ContextInfo:      buildContextInfo(own, msg),
		}}, nil
	case wabsync.KindContact:
		if len(msg.Contacts) == 0 {
			return nil, invalidMessage("a contact message needs at least one contact")
		}
		return buildContacts(own, msg), nil
	case wabsync.KindReaction:
		return nil, invalidMessage("a reaction message needs a target")
	}
	if !wabsync.IsMediaKind(msg.Kind) {
		return nil, invalidMessage("unknown message kind " + msg.Kind)
	}
	if msg.Media == nil || msg.Media.Open == nil {
		return nil, &wabsync.EngineError{Code: wabsync.MsgErrMediaMissing, Message: "the message has no file", Permanent: true}
	}
	up, err := e.upload(ctx, cli, msg.Kind, msg.Media)
	if err != nil {
		return nil, err
	}
	return buildMedia(own, msg, up), nil
}

func invalidMessage(s string) error {
	return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: s, Permanent: true}
}

// upload streams the file through whatsmeow's encryption (into a temporary
// file, never into memory) to WhatsApp's media servers.
func (e *Engine) upload(ctx context.Context, cli waClient, kind string, media *wabsync.OutgoingMedia) (whatsmeow.UploadResponse, error) {
	rc, err := media.Open()
	if err != nil {
		e.log.Error("whatsmeow: open media", "err", err)
		return whatsmeow.UploadResponse{}, &wabsync.EngineError{Code: wabsync.MsgErrMediaMissing, Message: "the message's file could not be read", Permanent: true}
	}
	defer rc.Close()
	tmp, err := e.tempFile("wabsync-upload-*")
	if err != nil {
		return whatsmeow.UploadResponse{}, &wabsync.EngineError{Code: wabsync.MsgErrMediaUpload, Message: "could not stage the file for upload"}
	}
	defer tmp.Close()
	up, err := cli.UploadReader(ctx, rc, tmp.File, uploadMediaType(kind))
	if err != nil {
		e.log.Warn("whatsmeow: upload failed", "err", err)
		if errors.Is(err, whatsmeow.ErrIQRateOverLimit) {
			return up, &wabsync.EngineError{Code: wabsync.MsgErrRateLimited, Message: "WhatsApp rate-limited the upload"}
		}
		return up, &wabsync.EngineError{Code: wabsync.MsgErrMediaUpload, Message: "could not upload the file to WhatsApp"}
	}
	return up, nil
}

func uploadMediaType(kind string) whatsmeow.MediaType {
	switch kind {
	case wabsync.KindImage, wabsync.KindSticker:
		return whatsmeow.MediaImage
	case wabsync.KindVideo:
		return whatsmeow.MediaVideo
	case wabsync.KindAudio, wabsync.KindVoice:
		return whatsmeow.MediaAudio
	}
	return whatsmeow.MediaDocument
}

// buildText is a plain Conversation, or an ExtendedTextMessage when the text
// replies to a message or mentions people. Link previews are not generated:
// WhatsApp's preview is made by the sender (title, description, thumbnail),
// which would mean fetching arbitrary URLs.
func buildText(own types.JID, msg *wabsync.OutgoingMessage) *waE2E.Message {
	ci := buildContextInfo(own, msg)
	if ci == nil {
		return &waE2E.Message{Conversation: proto.String(msg.Text)}
	}
	return &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(msg.Text), ContextInfo: ci}}
}

// buildContextInfo carries the quoted message of a reply and the mentioned
// JIDs; nil when there are neither.
func buildContextInfo(own types.JID, msg *wabsync.OutgoingMessage) *waE2E.ContextInfo {
	if msg.ReplyTo == nil && len(msg.Mentions) == 0 {
		return nil
	}
	ci := &waE2E.ContextInfo{}
	if q := msg.ReplyTo; q != nil {
		ci.StanzaID = proto.String(q.WAID)
		participant := q.Sender
		if participant == "" && q.FromMe {
			participant = own.String()
		} else if p, err := parseTo(participant); err == nil {
			participant = p.String()
		}
		if participant != "" {
			ci.Participant = proto.String(participant)
		}
		ci.QuotedMessage = &waE2E.Message{Conversation: proto.String(q.Text)}
	}
	for _, m := range msg.Mentions {
		if j, err := parseTo(m); err == nil {
			ci.MentionedJID = append(ci.MentionedJID, j.String())
		}
	}
	return ci
}

func buildMedia(own types.JID, msg *wabsync.OutgoingMessage, up whatsmeow.UploadResponse) *waE2E.Message {
	ci := buildContextInfo(own, msg)
	mime := msg.Media.MimeType
	caption := optString(msg.Caption)
	switch msg.Kind {
	case wabsync.KindImage:
		return &waE2E.Message{ImageMessage: &waE2E.ImageMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(orDefault(mime, "image/jpeg")), Caption: caption, ContextInfo: ci,
		}}
	case wabsync.KindVideo:
		return &waE2E.Message{VideoMessage: &waE2E.VideoMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(orDefault(mime, "video/mp4")), Caption: caption, ContextInfo: ci,
		}}
	case wabsync.KindAudio, wabsync.KindVoice:
		voice := msg.Kind == wabsync.KindVoice
		if voice {
			mime = voiceMimeType
		}
		return &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(orDefault(mime, "audio/mpeg")), PTT: proto.Bool(voice), ContextInfo: ci,
		}}
	case wabsync.KindSticker:
		return &waE2E.Message{StickerMessage: &waE2E.StickerMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Mimetype: proto.String(orDefault(mime, "image/webp")), ContextInfo: ci,
		}}
	}
	name := msg.Media.Filename
	if name == "" {
		name = "file"
	}
	doc := &waE2E.DocumentMessage{
		URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey,
		FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
		Mimetype: proto.String(orDefault(mime, "application/octet-stream")), FileName: proto.String(name),
		Title: proto.String(name), Caption: caption, ContextInfo: ci,
	}
	if caption != nil {
		// WhatsApp's own clients send captioned documents in this wrapper.
		return &waE2E.Message{DocumentWithCaptionMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{DocumentMessage: doc}}}
	}
	return &waE2E.Message{DocumentMessage: doc}
}

// buildContacts is a ContactMessage for one contact, a ContactsArrayMessage
// for several. A contact without a vCard of its own gets one built from its
// name and phones.
func buildContacts(own types.JID, msg *wabsync.OutgoingMessage) *waE2E.Message {
	ci := buildContextInfo(own, msg)
	cards := make([]*waE2E.ContactMessage, len(msg.Contacts))
	for i, c := range msg.Contacts {
		v := c.VCard
		if v == "" {
			v = buildVCard(c)
		}
		cards[i] = &waE2E.ContactMessage{DisplayName: proto.String(c.Name), Vcard: proto.String(v)}
	}
	if len(cards) == 1 {
		cards[0].ContextInfo = ci
		return &waE2E.Message{ContactMessage: cards[0]}
	}
	return &waE2E.Message{ContactsArrayMessage: &waE2E.ContactsArrayMessage{
		DisplayName: proto.String(fmt.Sprintf("%d contacts", len(cards))),
		Contacts:    cards,
		ContextInfo: ci,
	}}
}

// buildVCard builds the vCard 3.0 WhatsApp's clients send: each phone with
// its waid, so that the card offers "Message" for numbers on WhatsApp.
func buildVCard(c wabsync.Contact) string {
	var b strings.Builder
	name := vcardEscape(c.Name)
	b.WriteString("BEGIN:VCARD\r\nVERSION:3.0\r\n")
	b.WriteString("N:;" + name + ";;;\r\n")
	b.WriteString("FN:" + name + "\r\n")
	for _, p := range c.Phones {
		d := digitsOnly(p)
		if d == "" {
			continue
		}
		b.WriteString("TEL;type=CELL;type=VOICE;waid=" + d + ":+" + d + "\r\n")
	}
	b.WriteString("END:VCARD")
	return b.String()
}

func vcardEscape(s string) string {
	r := strings.NewReplacer("\\", "\\\\", ";", "\\;", ",", "\\,", "\r\n", "\\n", "\n", "\\n")
	return r.Replace(s)
}

// messageKey names an earlier message of chat for reactions and revokes.
// The participant (author) is given only in groups, for others' messages.
func messageKey(own, chat types.JID, t wabsync.MessageTarget) *waCommon.MessageKey {
	key := &waCommon.MessageKey{
		RemoteJID: proto.String(chat.String()),
		FromMe:    proto.Bool(t.FromMe),
		ID:        proto.String(t.WAID),
	}
	if !t.FromMe && chat.Server != types.DefaultUserServer && chat.Server != types.HiddenUserServer {
		if p, err := parseTo(t.Sender); err == nil && p.User != own.User {
			key.Participant = proto.String(p.String())
		}
	}
	return key
}

func buildReaction(own, chat types.JID, r *wabsync.OutgoingReaction, now time.Time) *waE2E.Message {
	return &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
		Key:               messageKey(own, chat, r.Target),
		Text:              proto.String(r.Emoji),
		SenderTimestampMS: proto.Int64(now.UnixMilli()),
	}}
}

// buildEdit is what whatsmeow's BuildEdit builds: the new text in a
// MESSAGE_EDIT protocol message, in an EditedMessage wrapper.
func buildEdit(chat types.JID, ed *wabsync.OutgoingEdit, now time.Time) *waE2E.Message {
	return &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
		ProtocolMessage: &waE2E.ProtocolMessage{
			Key: &waCommon.MessageKey{
				RemoteJID: proto.String(chat.String()),
				FromMe:    proto.Bool(true),
				ID:        proto.String(ed.Target.WAID),
			},
			Type:          waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(),
			EditedMessage: &waE2E.Message{Conversation: proto.String(ed.Text)},
			TimestampMS:   proto.Int64(now.UnixMilli()),
		},
	}}}
}

// buildRevoke is what whatsmeow's BuildRevoke builds: a REVOKE protocol
// message naming the target (another's message only as a group admin).
func buildRevoke(own, chat types.JID, t wabsync.MessageTarget) *waE2E.Message {
	return &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_REVOKE.Enum(),
		Key:  messageKey(own, chat, t),
	}}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return proto.String(s)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sendError maps what whatsmeow returned for a send to an EngineError with a
// message error code:
//   - server error 463 (reach-out timelock: too many new contacts) →
//     REACH_OUT_TIMELOCK, permanent for this message;
//   - server error 429, IQ 429 rate-overlimit → WHATSAPP_RATE_LIMITED;
//   - no LID for the number, IQ 404 on the user → NOT_ON_WHATSAPP, permanent;
//   - not connected, timeouts → SEND_FAILED, to retry;
//   - anything else → SEND_FAILED.
func sendError(err error) *wabsync.EngineError {
	var ee *wabsync.EngineError
	if errors.As(err, &ee) {
		return ee
	}
	if code, ok := serverErrorCode(err); ok {
		switch code {
		case 463:
			return &wabsync.EngineError{Code: wabsync.MsgErrReachOutLocked, Permanent: true,
				Message: "WhatsApp refused the message (error 463, reach-out timelock): the account messaged too many new contacts; wait before messaging people who have not written first"}
		case 429:
			return &wabsync.EngineError{Code: wabsync.MsgErrRateLimited, Message: "WhatsApp rate-limited the account (error 429)"}
		case 401, 403:
			return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Permanent: true, Message: fmt.Sprintf("WhatsApp refused the message (error %d)", code)}
		}
		return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: fmt.Sprintf("WhatsApp refused the message (error %d)", code)}
	}
	switch {
	case errors.Is(err, whatsmeow.ErrIQRateOverLimit):
		return &wabsync.EngineError{Code: wabsync.MsgErrRateLimited, Message: "WhatsApp rate-limited the account (429)"}
	case errors.Is(err, whatsmeow.ErrIQNotFound), strings.Contains(err.Error(), "no LID found for"):
		return &wabsync.EngineError{Code: wabsync.MsgErrNotOnWhatsApp, Permanent: true, Message: "the recipient is not on WhatsApp"}
	case errors.Is(err, whatsmeow.ErrNotConnected), errors.Is(err, whatsmeow.ErrNotLoggedIn), errors.Is(err, whatsmeow.ErrIQDisconnected),
		isDisconnected(err):
		return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: "the connection to WhatsApp dropped while sending"}
	case errors.Is(err, whatsmeow.ErrMessageTimedOut), errors.Is(err, whatsmeow.ErrIQTimedOut), errors.Is(err, context.DeadlineExceeded):
		return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: "WhatsApp did not confirm the message in time"}
	case errors.Is(err, context.Canceled):
		return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: "sending was cancelled"}
	case errors.Is(err, whatsmeow.ErrRecipientADJID), errors.Is(err, whatsmeow.ErrUnknownServer),
		errors.Is(err, whatsmeow.ErrBroadcastListUnsupported), errors.Is(err, whatsmeow.ErrNotInGroup), errors.Is(err, whatsmeow.ErrGroupNotFound):
		return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Permanent: true, Message: "WhatsApp cannot deliver to this recipient: " + safeDetail(err)}
	}
	return &wabsync.EngineError{Code: wabsync.MsgErrSendFailed, Message: "WhatsApp did not accept the message"}
}

func isDisconnected(err error) bool {
	var de *whatsmeow.DisconnectedError
	return errors.As(err, &de)
}

// serverErrorCode extracts N from whatsmeow's "server returned error N".
func serverErrorCode(err error) (int, bool) {
	if !errors.Is(err, whatsmeow.ErrServerReturnedError) {
		return 0, false
	}
	s := err.Error()
	i := strings.LastIndexByte(s, ' ')
	var code int
	if _, e := fmt.Sscanf(s[i+1:], "%d", &code); e != nil {
		return 0, false
	}
	return code, true
}

// safeDetail is a short description of err that is fine to show users:
// the outermost message (whatsmeow's own text) and the innermost cause
// ("no such host", "i/o timeout"), without what lies between (which may be
// SQL or other internals), capped in length.
func safeDetail(err error) string {
	if err == nil {
		return ""
	}
	parts := strings.Split(err.Error(), ": ")
	s := parts[0]
	if len(parts) > 1 {
		if last := parts[len(parts)-1]; last != "" && last != s {
			s += " (" + last + ")"
		}
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
