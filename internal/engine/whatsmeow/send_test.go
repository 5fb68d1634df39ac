package whatsmeow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/wabsync/wabsync"
)

func file(mime, name string, data []byte) *wabsync.OutgoingMedia {
	return &wabsync.OutgoingMedia{MimeType: mime, Filename: name, Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// uploaded is what the fake's upload answers for data, as the message must
// carry it.
type uploaded struct {
	url, path     string
	key, enc, sha []byte
	length        uint64
}

func uploadOf(data []byte) uploaded {
	sum := sha256.Sum256(data)
	return uploaded{url: "https://mmg.whatsapp.net/v/t62/fake", path: "/v/t62/fake?ccb=11",
		key: []byte("0123456789abcdef0123456789abcdef"), enc: []byte("enc-sha256"), sha: sum[:], length: uint64(len(data))}
}

func TestSend(t *testing.T) {
	jpeg := []byte("\xff\xd8\xff jpeg bytes")
	mp4 := []byte("....ftypmp42 video")
	mp3 := []byte("ID3 audio")
	ogg := []byte("OggS opus voice")
	pdf := []byte("%PDF-1.7 document")
	webp := []byte("RIFF....WEBP sticker")
	up := func(data []byte) uploaded { return uploadOf(data) }
	ownPN := "14155550100@s.whatsapp.net"

	tests := []struct {
		name       string
		msg        wabsync.OutgoingMessage
		wantTo     types.JID
		want       *waE2E.Message
		wantUpload whatsmeow.MediaType
	}{
		{
			name:   "Text",
			msg:    wabsync.OutgoingMessage{Kind: wabsync.KindText, To: bobPN.String(), Text: "hi Bob"},
			wantTo: bobPN,
			want:   &waE2E.Message{Conversation: proto.String("hi Bob")},
		},
		{
			name:   "TextToE164",
			msg:    wabsync.OutgoingMessage{Kind: wabsync.KindText, To: "+14155550111", Text: "hi"},
			wantTo: bobPN,
			want:   &waE2E.Message{Conversation: proto.String("hi")},
		},
		{
			name: "ReplyWithMentionsInGroup",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindText, To: group.String(), Text: "@14155550122 agreed",
				Mentions: []string{carolPN.String()},
				ReplyTo:  &wabsync.QuotedMessage{WAID: "Q1", Sender: carolPN.String(), Text: "shall we?"}},
			wantTo: group,
			want: &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("@14155550122 agreed"),
				ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("Q1"), Participant: proto.String(carolPN.String()),
					QuotedMessage: &waE2E.Message{Conversation: proto.String("shall we?")}, MentionedJID: []string{carolPN.String()}}}},
		},
		{
			name: "ReplyToOwnMessage",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindText, To: bobPN.String(), Text: "as I said",
				ReplyTo: &wabsync.QuotedMessage{WAID: "O1", FromMe: true, Text: "earlier"}},
			wantTo: bobPN,
			want: &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("as I said"),
				ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("O1"), Participant: proto.String(ownPN),
					QuotedMessage: &waE2E.Message{Conversation: proto.String("earlier")}}}},
		},
		{
			name:       "Image",
			msg:        wabsync.OutgoingMessage{Kind: wabsync.KindImage, To: bobPN.String(), Caption: "look", Media: file("image/jpeg", "a.jpg", jpeg)},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaImage,
			want: &waE2E.Message{ImageMessage: &waE2E.ImageMessage{URL: proto.String(up(jpeg).url), DirectPath: proto.String(up(jpeg).path),
				MediaKey: up(jpeg).key, FileEncSHA256: up(jpeg).enc, FileSHA256: up(jpeg).sha, FileLength: proto.Uint64(up(jpeg).length),
				Mimetype: proto.String("image/jpeg"), Caption: proto.String("look")}},
		},
		{
			name: "VideoReplying",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindVideo, To: bobPN.String(), Media: file("video/mp4", "v.mp4", mp4),
				ReplyTo: &wabsync.QuotedMessage{WAID: "Q9", Sender: bobPN.String(), Text: "send it"}},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaVideo,
			want: &waE2E.Message{VideoMessage: &waE2E.VideoMessage{URL: proto.String(up(mp4).url), DirectPath: proto.String(up(mp4).path),
				MediaKey: up(mp4).key, FileEncSHA256: up(mp4).enc, FileSHA256: up(mp4).sha, FileLength: proto.Uint64(up(mp4).length),
				Mimetype: proto.String("video/mp4"),
				ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("Q9"), Participant: proto.String(bobPN.String()),
					QuotedMessage: &waE2E.Message{Conversation: proto.String("send it")}}}},
		},
		{
			name:       "Audio",
			msg:        wabsync.OutgoingMessage{Kind: wabsync.KindAudio, To: bobPN.String(), Media: file("audio/mpeg", "a.mp3", mp3)},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaAudio,
			want: &waE2E.Message{AudioMessage: &waE2E.AudioMessage{URL: proto.String(up(mp3).url), DirectPath: proto.String(up(mp3).path),
				MediaKey: up(mp3).key, FileEncSHA256: up(mp3).enc, FileSHA256: up(mp3).sha, FileLength: proto.Uint64(up(mp3).length),
				Mimetype: proto.String("audio/mpeg"), PTT: proto.Bool(false)}},
		},
		{
			name:       "Voice",
			msg:        wabsync.OutgoingMessage{Kind: wabsync.KindVoice, To: bobPN.String(), Media: file("audio/ogg", "v.ogg", ogg)},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaAudio,
			want: &waE2E.Message{AudioMessage: &waE2E.AudioMessage{URL: proto.String(up(ogg).url), DirectPath: proto.String(up(ogg).path),
				MediaKey: up(ogg).key, FileEncSHA256: up(ogg).enc, FileSHA256: up(ogg).sha, FileLength: proto.Uint64(up(ogg).length),
				Mimetype: proto.String("audio/ogg; codecs=opus"), PTT: proto.Bool(true)}},
		},
		{
			name:       "Document",
			msg:        wabsync.OutgoingMessage{Kind: wabsync.KindDocument, To: bobPN.String(), Media: file("application/pdf", "invoice.pdf", pdf)},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaDocument,
			want: &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{URL: proto.String(up(pdf).url), DirectPath: proto.String(up(pdf).path),
				MediaKey: up(pdf).key, FileEncSHA256: up(pdf).enc, FileSHA256: up(pdf).sha, FileLength: proto.Uint64(up(pdf).length),
				Mimetype: proto.String("application/pdf"), FileName: proto.String("invoice.pdf"), Title: proto.String("invoice.pdf")}},
		},
		{
			name:       "DocumentWithCaption",
			msg:        wabsync.OutgoingMessage{Kind: wabsync.KindDocument, To: bobPN.String(), Caption: "your invoice", Media: file("application/pdf", "invoice.pdf", pdf)},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaDocument,
			want: &waE2E.Message{DocumentWithCaptionMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{
				URL: proto.String(up(pdf).url), DirectPath: proto.String(up(pdf).path),
				MediaKey: up(pdf).key, FileEncSHA256: up(pdf).enc, FileSHA256: up(pdf).sha, FileLength: proto.Uint64(up(pdf).length),
				Mimetype: proto.String("application/pdf"), FileName: proto.String("invoice.pdf"), Title: proto.String("invoice.pdf"),
				Caption: proto.String("your invoice")}}}},
		},
		{
			name:       "Sticker",
			msg:        wabsync.OutgoingMessage{Kind: wabsync.KindSticker, To: bobPN.String(), Media: file("image/webp", "", webp)},
			wantTo:     bobPN,
			wantUpload: whatsmeow.MediaImage,
			want: &waE2E.Message{StickerMessage: &waE2E.StickerMessage{URL: proto.String(up(webp).url), DirectPath: proto.String(up(webp).path),
				MediaKey: up(webp).key, FileEncSHA256: up(webp).enc, FileSHA256: up(webp).sha, FileLength: proto.Uint64(up(webp).length),
				Mimetype: proto.String("image/webp")}},
		},
		{
			name: "Location",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindLocation, To: bobPN.String(),
				Location: &wabsync.Location{Latitude: 52.52, Longitude: 13.405, Name: "Berlin", Address: "Pariser Platz"}},
			wantTo: bobPN,
			want: &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(52.52), DegreesLongitude: proto.Float64(13.405),
				Name: proto.String("Berlin"), Address: proto.String("Pariser Platz")}},
		},
		{
			name: "Contact",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindContact, To: bobPN.String(),
				Contacts: []wabsync.Contact{{Name: "Eve; Smith", Phones: []string{"+49 151 12345678"}}}},
			wantTo: bobPN,
			want: &waE2E.Message{ContactMessage: &waE2E.ContactMessage{DisplayName: proto.String("Eve; Smith"),
				Vcard: proto.String("BEGIN:VCARD\r\nVERSION:3.0\r\nN:;Eve\\; Smith;;;\r\nFN:Eve\\; Smith\r\nTEL;type=CELL;type=VOICE;waid=4915112345678:+4915112345678\r\nEND:VCARD")}},
		},
		{
			name: "Contacts",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindContact, To: bobPN.String(), Contacts: []wabsync.Contact{
				{Name: "Eve", Phones: []string{"+111"}}, {Name: "Own card", VCard: "BEGIN:VCARD\r\nFN:Own\r\nEND:VCARD"}}},
			wantTo: bobPN,
			want: &waE2E.Message{ContactsArrayMessage: &waE2E.ContactsArrayMessage{DisplayName: proto.String("2 contacts"), Contacts: []*waE2E.ContactMessage{
				{DisplayName: proto.String("Eve"), Vcard: proto.String("BEGIN:VCARD\r\nVERSION:3.0\r\nN:;Eve;;;\r\nFN:Eve\r\nTEL;type=CELL;type=VOICE;waid=111:+111\r\nEND:VCARD")},
				{DisplayName: proto.String("Own card"), Vcard: proto.String("BEGIN:VCARD\r\nFN:Own\r\nEND:VCARD")},
			}}},
		},
		{
			name: "ReactionToOthersMessageInGroup",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindReaction, To: group.String(),
				Reaction: &wabsync.OutgoingReaction{Target: wabsync.MessageTarget{WAID: "G7", Sender: carolPN.String()}, Emoji: "❤️"}},
			wantTo: group,
			want: &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
				Key:  &waCommon.MessageKey{RemoteJID: proto.String(group.String()), FromMe: proto.Bool(false), ID: proto.String("G7"), Participant: proto.String(carolPN.String())},
				Text: proto.String("❤️"), SenderTimestampMS: proto.Int64(fixedNow.UnixMilli())}},
		},
		{
			name: "ReactionRemovedFromOwnMessage",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindReaction, To: bobPN.String(),
				Reaction: &wabsync.OutgoingReaction{Target: wabsync.MessageTarget{WAID: "O1", FromMe: true}}},
			wantTo: bobPN,
			want: &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
				Key:  &waCommon.MessageKey{RemoteJID: proto.String(bobPN.String()), FromMe: proto.Bool(true), ID: proto.String("O1")},
				Text: proto.String(""), SenderTimestampMS: proto.Int64(fixedNow.UnixMilli())}},
		},
		{
			name: "Edit",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindText, To: bobPN.String(),
				Edit: &wabsync.OutgoingEdit{Target: wabsync.MessageTarget{WAID: "O1", FromMe: true}, Text: "fixed typo"}},
			wantTo: bobPN,
			want: &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
				Key:           &waCommon.MessageKey{RemoteJID: proto.String(bobPN.String()), FromMe: proto.Bool(true), ID: proto.String("O1")},
				Type:          waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(),
				EditedMessage: &waE2E.Message{Conversation: proto.String("fixed typo")},
				TimestampMS:   proto.Int64(fixedNow.UnixMilli()),
			}}}},
		},
		{
			name: "RevokeOwn",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindText, To: bobPN.String(),
				Revoke: &wabsync.MessageTarget{WAID: "O1", FromMe: true}},
			wantTo: bobPN,
			want: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(),
				Key: &waCommon.MessageKey{RemoteJID: proto.String(bobPN.String()), FromMe: proto.Bool(true), ID: proto.String("O1")}}},
		},
		{
			name: "RevokeAsGroupAdmin",
			msg: wabsync.OutgoingMessage{Kind: wabsync.KindText, To: group.String(),
				Revoke: &wabsync.MessageTarget{WAID: "G8", Sender: carolPN.String()}},
			wantTo: group,
			want: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(),
				Key: &waCommon.MessageKey{RemoteJID: proto.String(group.String()), FromMe: proto.Bool(false), ID: proto.String("G8"), Participant: proto.String(carolPN.String())}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			h.putLID(t, bobLID.String(), bobPN.String())
			h.fake.sendTime = msgTime
			msg := tt.msg
			msg.WAID = "3EB0" + tt.name
			res, err := h.e.Send(context.Background(), &msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if !res.Timestamp.Equal(msgTime) {
				t.Errorf("timestamp = %v", res.Timestamp)
			}
			if len(h.fake.sent) != 1 {
				t.Fatalf("%d SendMessage calls", len(h.fake.sent))
			}
			s := h.fake.sent[0]
			if s.to != tt.wantTo {
				t.Errorf("to = %v, want %v", s.to, tt.wantTo)
			}
			if len(s.extra) != 1 || s.extra[0].ID != types.MessageID(msg.WAID) {
				t.Errorf("extra = %+v, want the fixed id %q", s.extra, msg.WAID)
			}
			if !proto.Equal(s.msg, tt.want) {
				t.Errorf("message\n%s\nwant\n%s", prototext.Format(s.msg), prototext.Format(tt.want))
			}
			if tt.wantUpload != "" {
				if len(h.fake.uploads) != 1 || h.fake.uploadMT[0] != tt.wantUpload {
					t.Errorf("uploads = %d %v, want one %v", len(h.fake.uploads), h.fake.uploadMT, tt.wantUpload)
				} else if data, _ := io.ReadAll(mustOpen(t, msg.Media)); !bytes.Equal(h.fake.uploads[0], data) {
					t.Errorf("uploaded %q", h.fake.uploads[0])
				}
			} else if len(h.fake.uploads) != 0 {
				t.Errorf("uploaded for a %s message", tt.msg.Kind)
			}
			if len(h.fake.checks) != 0 {
				t.Errorf("checked %v though the recipient is known", h.fake.checks)
			}
		})
	}
}

func mustOpen(t *testing.T, m *wabsync.OutgoingMedia) io.Reader {
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// A number whose LID is not known is checked before sending.
func TestSendChecksUnknownNumbers(t *testing.T) {
	t.Run("NotOnWhatsApp", func(t *testing.T) {
		h := newHarness(t, true)
		_, err := h.e.Send(context.Background(), &wabsync.OutgoingMessage{WAID: "X1", Kind: wabsync.KindText, To: "+15550000000", Text: "hi"})
		if !isEngineError(err, wabsync.MsgErrNotOnWhatsApp, true) {
			t.Fatalf("Send = %v", err)
		}
		if len(h.fake.sent) != 0 {
			t.Fatal("sent anyway")
		}
		if !reflect.DeepEqual(h.fake.checks, [][]string{{"+15550000000"}}) {
			t.Fatalf("checks = %v", h.fake.checks)
		}
	})
	t.Run("OnWhatsApp", func(t *testing.T) {
		h := newHarness(t, true)
		h.fake.onWhatsApp["+14155550122"] = true
		if _, err := h.e.Send(context.Background(), &wabsync.OutgoingMessage{WAID: "X2", Kind: wabsync.KindText, To: carolPN.String(), Text: "hi"}); err != nil {
			t.Fatal(err)
		}
		if len(h.fake.sent) != 1 || len(h.fake.checks) != 1 {
			t.Fatalf("sent %d, checked %d", len(h.fake.sent), len(h.fake.checks))
		}
	})
	t.Run("CheckRateLimited", func(t *testing.T) {
		h := newHarness(t, true)
		h.fake.checkErr = fmt.Errorf("failed to send usync query: %w", whatsmeow.ErrIQRateOverLimit)
		_, err := h.e.Send(context.Background(), &wabsync.OutgoingMessage{WAID: "X3", Kind: wabsync.KindText, To: carolPN.String(), Text: "hi"})
		if !isEngineError(err, wabsync.MsgErrRateLimited, false) {
			t.Fatalf("Send = %v", err)
		}
	})
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name      string
		sendErr   error
		uploadErr error
		media     *wabsync.OutgoingMedia
		code      string
		permanent bool
	}{
		{name: "ReachOutTimelock", sendErr: fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 463), code: wabsync.MsgErrReachOutLocked, permanent: true},
		{name: "ServerRateLimit", sendErr: fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 429), code: wabsync.MsgErrRateLimited},
		{name: "OtherServerError", sendErr: fmt.Errorf("%w %d", whatsmeow.ErrServerReturnedError, 479), code: wabsync.MsgErrSendFailed},
		{name: "IQRateLimit", sendErr: fmt.Errorf("failed to get device list: %w", whatsmeow.ErrIQRateOverLimit), code: wabsync.MsgErrRateLimited},
		{name: "NoLID", sendErr: errors.New("no LID found for 14155550111@s.whatsapp.net from server"), code: wabsync.MsgErrNotOnWhatsApp, permanent: true},
		{name: "Timeout", sendErr: whatsmeow.ErrMessageTimedOut, code: wabsync.MsgErrSendFailed},
		{name: "NotConnected", sendErr: whatsmeow.ErrNotConnected, code: wabsync.MsgErrSendFailed},
		{name: "Disconnected", sendErr: &whatsmeow.DisconnectedError{Action: "message send"}, code: wabsync.MsgErrSendFailed},
		{name: "NotInGroup", sendErr: fmt.Errorf("failed to get group members: %w", whatsmeow.ErrNotInGroup), code: wabsync.MsgErrSendFailed, permanent: true},
		{name: "Unknown", sendErr: errors.New("something odd"), code: wabsync.MsgErrSendFailed},
		{name: "UploadFailed", uploadErr: errors.New("upload error: status code 500"), media: file("image/jpeg", "a.jpg", []byte("x")), code: wabsync.MsgErrMediaUpload},
		{name: "FileMissing", media: &wabsync.OutgoingMedia{MimeType: "image/jpeg", Open: func() (io.ReadCloser, error) { return nil, errors.New("no such blob") }},
			code: wabsync.MsgErrMediaMissing, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			h.putLID(t, bobLID.String(), bobPN.String())
			h.fake.sendErr, h.fake.uploadErr = tt.sendErr, tt.uploadErr
			msg := &wabsync.OutgoingMessage{WAID: "E1", Kind: wabsync.KindText, To: bobPN.String(), Text: "x"}
			if tt.media != nil {
				msg.Kind, msg.Media = wabsync.KindImage, tt.media
			}
			_, err := h.e.Send(context.Background(), msg)
			if !isEngineError(err, tt.code, tt.permanent) {
				t.Fatalf("Send = %#v, want %s (permanent %v)", err, tt.code, tt.permanent)
			}
			if tt.media != nil && len(h.fake.sent) != 0 {
				t.Fatal("sent without media")
			}
		})
	}
	t.Run("NotConnectedSession", func(t *testing.T) {
		h := newHarness(t, true)
		h.fake.Disconnect()
		_, err := h.e.Send(context.Background(), &wabsync.OutgoingMessage{WAID: "E2", Kind: wabsync.KindText, To: bobPN.String(), Text: "x"})
		if !isEngineError(err, wabsync.ESessionNotConnected, false) {
			t.Fatalf("Send = %v", err)
		}
	})
	t.Run("InvalidMessages", func(t *testing.T) {
		h := newHarness(t, true)
		h.putLID(t, bobLID.String(), bobPN.String())
		for _, m := range []*wabsync.OutgoingMessage{
			{Kind: wabsync.KindText, To: bobPN.String(), Text: "no id"},
			{WAID: "I1", Kind: wabsync.KindText, To: "not a jid", Text: "x"},
			{WAID: "I2", Kind: wabsync.KindLocation, To: bobPN.String()},
			{WAID: "I3", Kind: wabsync.KindContact, To: bobPN.String()},
			{WAID: "I4", Kind: "poll", To: bobPN.String()},
			{WAID: "I5", Kind: wabsync.KindImage, To: bobPN.String()},
		} {
			if _, err := h.e.Send(context.Background(), m); err == nil {
				t.Errorf("Send(%+v) succeeded", m)
			}
		}
		if len(h.fake.sent) != 0 {
			t.Fatalf("%d sent", len(h.fake.sent))
		}
	})
}

func TestMarkReadPresenceCheck(t *testing.T) {
	h := newHarness(t, true)
	ctx := context.Background()

	if err := h.e.MarkRead(ctx, group.String(), carolPN.String(), []string{"G1", "G2"}, msgTime); err != nil {
		t.Fatal(err)
	}
	if err := h.e.MarkRead(ctx, bobPN.String(), "", []string{"B1"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	want := []markReadCall{
		{ids: []string{"G1", "G2"}, at: msgTime, chat: group, sender: carolPN},
		{ids: []string{"B1"}, at: fixedNow, chat: bobPN},
	}
	if !reflect.DeepEqual(h.fake.markRead, want) {
		t.Fatalf("MarkRead calls = %+v", h.fake.markRead)
	}

	for _, state := range []string{"typing", "recording", "paused"} {
		if err := h.e.SendPresence(ctx, bobPN.String(), state); err != nil {
			t.Fatal(err)
		}
	}
	wantP := []presenceCall{
		{to: bobPN, state: types.ChatPresenceComposing, media: types.ChatPresenceMediaText},
		{to: bobPN, state: types.ChatPresenceComposing, media: types.ChatPresenceMediaAudio},
		{to: bobPN, state: types.ChatPresencePaused, media: types.ChatPresenceMediaText},
	}
	if !reflect.DeepEqual(h.fake.presence, wantP) {
		t.Fatalf("presence calls = %+v", h.fake.presence)
	}
	if err := h.e.SendPresence(ctx, bobPN.String(), "dancing"); !isAPIError(err, wabsync.EValidation) {
		t.Fatalf("bad state: %v", err)
	}

	h.fake.onWhatsApp["+14155550111"] = true
	got, err := h.e.CheckPhones(ctx, []string{"+14155550111", "+1 555 000 0000", "+14155550111"})
	if err != nil {
		t.Fatal(err)
	}
	wantC := []wabsync.PhoneCheck{
		{Phone: "+14155550111", OnWhatsApp: true, JID: bobPN.String()},
		{Phone: "+1 555 000 0000", OnWhatsApp: false},
		{Phone: "+14155550111", OnWhatsApp: true, JID: bobPN.String()},
	}
	if !reflect.DeepEqual(got, wantC) {
		t.Fatalf("CheckPhones = %+v", got)
	}
	if !reflect.DeepEqual(h.fake.checks, [][]string{{"+14155550111", "+15550000000"}}) {
		t.Fatalf("queries = %v", h.fake.checks)
	}
}
