package whatsmeow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/wabsync/wabsync"
)

// People of the tests.
var (
	bobPN   = mustJID("14155550111@s.whatsapp.net")
	bobLID  = mustJID("88800000000111@lid")
	carolPN = mustJID("14155550122@s.whatsapp.net")
	carolLD = mustJID("88800000000122@lid")
	daveLID = mustJID("88800000000133@lid") // no phone number known
	group   = mustJID("120363000000000001@g.us")
	msgTime = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
)

// dm is a direct message from Bob (phone-number addressed, LID as alt).
func dm(id string) types.MessageInfo {
	return types.MessageInfo{
		MessageSource: types.MessageSource{Chat: bobPN, Sender: bobPN.ToNonAD(), SenderAlt: bobLID, AddressingMode: types.AddressingModePN},
		ID:            id, PushName: "Bob", Timestamp: msgTime,
	}
}

// inGroup is a group message from Carol (LID addressed, phone as alt).
func inGroup(id string) types.MessageInfo {
	return types.MessageInfo{
		MessageSource: types.MessageSource{Chat: group, Sender: carolLD, SenderAlt: carolPN, IsGroup: true, AddressingMode: types.AddressingModeLID},
		ID:            id, PushName: "Carol", Timestamp: msgTime,
	}
}

// incoming builds the event as whatsmeow dispatches it (UnwrapRaw done).
func incoming(info types.MessageInfo, raw *waE2E.Message) *events.Message {
	return (&events.Message{Info: info, RawMessage: raw}).UnwrapRaw()
}

var (
	mediaKey = []byte("0123456789abcdef0123456789abcdef")
	fileSHA  = []byte("0123456789abcdef0123456789abcdef")
	encSHA   = []byte("fedcba9876543210fedcba9876543210")
)

func imageMsg(caption string, ci *waE2E.ContextInfo) *waE2E.ImageMessage {
	return &waE2E.ImageMessage{
		URL: proto.String("https://mmg.whatsapp.net/x"), DirectPath: proto.String("/v/t62.7118-24/img"), MediaKey: mediaKey,
		FileSHA256: fileSHA, FileEncSHA256: encSHA, FileLength: proto.Uint64(2048), Mimetype: proto.String("image/jpeg"),
		Caption: optString(caption), ContextInfo: ci,
	}
}

// wantMedia is the InboundMedia the engine should report.
func wantMedia(kind, path, mime string, size uint64, filename string) *wabsync.InboundMedia {
	return &wabsync.InboundMedia{
		MimeType: mime, Size: int64(size), SHA256: hex.EncodeToString(fileSHA), Filename: filename,
		Ref: mediaRef{DirectPath: path, MediaKey: mediaKey, FileEncSHA256: encSHA, FileSHA256: fileSHA, Length: size, Type: kind, MimeType: mime}.encode(),
	}
}

// fromBob / fromCarol fill the sender fields of a want.
func fromBob(m wabsync.InboundMessage) wabsync.InboundMessage {
	m.Chat, m.FromJID, m.FromLID, m.FromPhone, m.PushName, m.Timestamp = bobPN.String(), bobPN.String(), bobLID.String(), "+14155550111", "Bob", msgTime
	return m
}

func fromCarol(m wabsync.InboundMessage) wabsync.InboundMessage {
	m.Chat, m.FromJID, m.FromLID, m.FromPhone, m.PushName, m.Timestamp = group.String(), carolPN.String(), carolLD.String(), "+14155550122", "Carol", msgTime
	return m
}

func TestReceiveMessages(t *testing.T) {
	tests := []struct {
		name string
		evt  *events.Message
		want *wabsync.InboundMessage // nil: not reported
	}{
		{
			name: "Text",
			evt:  incoming(dm("A1"), &waE2E.Message{Conversation: proto.String("hello")}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A1", Kind: wabsync.KindText, Text: "hello"})),
		},
		{
			name: "ExtendedTextReplyWithMentionsInGroup",
			evt: incoming(inGroup("A2"), &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{
				Text: proto.String("@14155550111 see above"),
				ContextInfo: &waE2E.ContextInfo{
					StanzaID: proto.String("Q1"), Participant: proto.String(bobPN.String()),
					QuotedMessage: &waE2E.Message{Conversation: proto.String("original")},
					MentionedJID:  []string{bobPN.String()},
				},
			}}),
			want: ptr(fromCarol(wabsync.InboundMessage{WAID: "A2", Kind: wabsync.KindText, Text: "@14155550111 see above",
				ReplyTo: "Q1", Mentions: []string{bobPN.String()}})),
		},
		{
			name: "ImageInEphemeralWrapper",
			evt: incoming(dm("A3"), &waE2E.Message{EphemeralMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				ImageMessage: imageMsg("look", &waE2E.ContextInfo{StanzaID: proto.String("Q2")}),
			}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A3", Kind: wabsync.KindImage, Caption: "look", ReplyTo: "Q2",
				Media: wantMedia(mediaImage, "/v/t62.7118-24/img", "image/jpeg", 2048, "")})),
		},
		{
			name: "VideoViewOnce",
			evt: incoming(dm("A4"), &waE2E.Message{ViewOnceMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				VideoMessage: &waE2E.VideoMessage{DirectPath: proto.String("/v/vid"), MediaKey: mediaKey, FileSHA256: fileSHA,
					FileEncSHA256: encSHA, FileLength: proto.Uint64(9000), Mimetype: proto.String("video/mp4"), Caption: proto.String("once")},
			}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A4", Kind: wabsync.KindVideo, Caption: "once",
				Media: wantMedia(mediaVideo, "/v/vid", "video/mp4", 9000, "")})),
		},
		{
			name: "Audio",
			evt: incoming(dm("A5"), &waE2E.Message{AudioMessage: &waE2E.AudioMessage{DirectPath: proto.String("/v/aud"), MediaKey: mediaKey,
				FileSHA256: fileSHA, FileEncSHA256: encSHA, FileLength: proto.Uint64(300), Mimetype: proto.String("audio/mpeg")}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A5", Kind: wabsync.KindAudio, Media: wantMedia(mediaAudio, "/v/aud", "audio/mpeg", 300, "")})),
		},
		{
			name: "VoiceViewOnceV2",
			evt: incoming(dm("A6"), &waE2E.Message{ViewOnceMessageV2: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				AudioMessage: &waE2E.AudioMessage{DirectPath: proto.String("/v/ptt"), MediaKey: mediaKey, FileSHA256: fileSHA,
					FileEncSHA256: encSHA, FileLength: proto.Uint64(120), Mimetype: proto.String(voiceMimeType), PTT: proto.Bool(true)},
			}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A6", Kind: wabsync.KindVoice, Media: wantMedia(mediaAudio, "/v/ptt", voiceMimeType, 120, "")})),
		},
		{
			name: "VoiceViewOnceV2Extension",
			evt: incoming(dm("A6b"), &waE2E.Message{ViewOnceMessageV2Extension: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				AudioMessage: &waE2E.AudioMessage{DirectPath: proto.String("/v/ptt2"), MediaKey: mediaKey, FileSHA256: fileSHA,
					FileEncSHA256: encSHA, FileLength: proto.Uint64(121), Mimetype: proto.String(voiceMimeType), PTT: proto.Bool(true)},
			}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A6b", Kind: wabsync.KindVoice, Media: wantMedia(mediaAudio, "/v/ptt2", voiceMimeType, 121, "")})),
		},
		{
			name: "DocumentWithCaption",
			evt: incoming(dm("A7"), &waE2E.Message{DocumentWithCaptionMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				DocumentMessage: &waE2E.DocumentMessage{DirectPath: proto.String("/v/doc"), MediaKey: mediaKey, FileSHA256: fileSHA,
					FileEncSHA256: encSHA, FileLength: proto.Uint64(4096), Mimetype: proto.String("application/pdf"),
					FileName: proto.String("invoice.pdf"), Caption: proto.String("your invoice")},
			}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A7", Kind: wabsync.KindDocument, Caption: "your invoice",
				Media: wantMedia(mediaDocument, "/v/doc", "application/pdf", 4096, "invoice.pdf")})),
		},
		{
			name: "Sticker",
			evt: incoming(dm("A8"), &waE2E.Message{StickerMessage: &waE2E.StickerMessage{DirectPath: proto.String("/v/stk"), MediaKey: mediaKey,
				FileSHA256: fileSHA, FileEncSHA256: encSHA, FileLength: proto.Uint64(777), Mimetype: proto.String("image/webp")}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A8", Kind: wabsync.KindSticker, Media: wantMedia(mediaSticker, "/v/stk", "image/webp", 777, "")})),
		},
		{
			name: "Location",
			evt: incoming(dm("A9"), &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(52.52),
				DegreesLongitude: proto.Float64(13.405), Name: proto.String("Berlin"), Address: proto.String("Pariser Platz")}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A9", Kind: wabsync.KindLocation,
				Location: &wabsync.Location{Latitude: 52.52, Longitude: 13.405, Name: "Berlin", Address: "Pariser Platz"}})),
		},
		{
			name: "LiveLocation",
			evt: incoming(dm("A10"), &waE2E.Message{LiveLocationMessage: &waE2E.LiveLocationMessage{DegreesLatitude: proto.Float64(1.5),
				DegreesLongitude: proto.Float64(-2.25), Caption: proto.String("on my way")}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A10", Kind: wabsync.KindLocation, Caption: "on my way",
				Location: &wabsync.Location{Latitude: 1.5, Longitude: -2.25}})),
		},
		{
			name: "Contact",
			evt: incoming(dm("A11"), &waE2E.Message{ContactMessage: &waE2E.ContactMessage{DisplayName: proto.String("Eve"),
				Vcard: proto.String("BEGIN:VCARD\nVERSION:3.0\nFN:Eve\nTEL;type=CELL;waid=4915112345678:+49 151 12345678\nitem1.TEL:+1 (415) 555-0199\nEND:VCARD")}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A11", Kind: wabsync.KindContact, Contacts: []wabsync.Contact{{Name: "Eve",
				Phones: []string{"+4915112345678", "+14155550199"},
				VCard:  "BEGIN:VCARD\nVERSION:3.0\nFN:Eve\nTEL;type=CELL;waid=4915112345678:+49 151 12345678\nitem1.TEL:+1 (415) 555-0199\nEND:VCARD"}}})),
		},
		{
			name: "ContactsArray",
			evt: incoming(dm("A12"), &waE2E.Message{ContactsArrayMessage: &waE2E.ContactsArrayMessage{DisplayName: proto.String("2 contacts"),
				Contacts: []*waE2E.ContactMessage{
					{DisplayName: proto.String("Eve"), Vcard: proto.String("BEGIN:VCARD\r\nFN:Eve\r\nTEL;waid=111:+111\r\nEND:VCARD")},
					{DisplayName: proto.String("Mallory"), Vcard: proto.String("BEGIN:VCARD\r\nFN:Mallory\r\nTEL:+222\r\nEND:VCARD")},
				}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A12", Kind: wabsync.KindContact, Contacts: []wabsync.Contact{
				{Name: "Eve", Phones: []string{"+111"}, VCard: "BEGIN:VCARD\r\nFN:Eve\r\nTEL;waid=111:+111\r\nEND:VCARD"},
				{Name: "Mallory", Phones: []string{"+222"}, VCard: "BEGIN:VCARD\r\nFN:Mallory\r\nTEL:+222\r\nEND:VCARD"},
			}})),
		},
		{
			name: "Reaction",
			evt: incoming(inGroup("A13"), &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
				Key:  &waCommon.MessageKey{RemoteJID: proto.String(group.String()), FromMe: proto.Bool(true), ID: proto.String("OUT1")},
				Text: proto.String("👍"), SenderTimestampMS: proto.Int64(1)}}),
			want: ptr(fromCarol(wabsync.InboundMessage{WAID: "A13", Kind: wabsync.KindReaction,
				Reaction: &wabsync.InboundReaction{TargetWAID: "OUT1", Emoji: "👍"}})),
		},
		{
			name: "ReactionRemoved",
			evt: incoming(dm("A14"), &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{
				Key: &waCommon.MessageKey{ID: proto.String("OUT2")}, Text: proto.String("")}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A14", Kind: wabsync.KindReaction,
				Reaction: &wabsync.InboundReaction{TargetWAID: "OUT2", Emoji: ""}})),
		},
		{
			name: "Edit",
			evt: incoming(dm("A15"), &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
				ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(),
					Key:           &waCommon.MessageKey{ID: proto.String("A1"), RemoteJID: proto.String(bobPN.String())},
					EditedMessage: &waE2E.Message{Conversation: proto.String("hello, corrected")}},
			}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A15", Kind: wabsync.KindText, EditOf: "A1", Text: "hello, corrected"})),
		},
		{
			name: "EditOfACaption",
			evt: incoming(dm("A15b"), &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(),
				Key:           &waCommon.MessageKey{ID: proto.String("A3")},
				EditedMessage: &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String("new caption")}}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A15b", Kind: wabsync.KindText, EditOf: "A3", Text: "new caption"})),
		},
		{
			name: "Revoke",
			evt: incoming(dm("A16"), &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(),
				Key: &waCommon.MessageKey{ID: proto.String("A1"), RemoteJID: proto.String(bobPN.String())}}}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A16", Kind: wabsync.KindText, RevokeOf: "A1"})),
		},
		{
			name: "LIDOnlySenderResolvedThroughTheLIDStore",
			evt: incoming(types.MessageInfo{
				MessageSource: types.MessageSource{Chat: bobLID, Sender: mustJID("88800000000111:3@lid"), AddressingMode: types.AddressingModeLID},
				ID:            "A17", PushName: "Bob", Timestamp: msgTime,
			}, &waE2E.Message{Conversation: proto.String("via lid")}),
			want: ptr(fromBob(wabsync.InboundMessage{WAID: "A17", Kind: wabsync.KindText, Text: "via lid"})),
		},
		{
			name: "LIDOnlySenderUnknown",
			evt: incoming(types.MessageInfo{
				MessageSource: types.MessageSource{Chat: daveLID, Sender: daveLID, AddressingMode: types.AddressingModeLID},
				ID:            "A18", PushName: "Dave", Timestamp: msgTime,
			}, &waE2E.Message{Conversation: proto.String("who am i")}),
			want: &wabsync.InboundMessage{WAID: "A18", Chat: daveLID.String(), FromJID: daveLID.String(), FromLID: daveLID.String(),
				PushName: "Dave", Timestamp: msgTime, Kind: wabsync.KindText, Text: "who am i"},
		},
		{
			name: "OwnMessageFromThePhone",
			evt: incoming(types.MessageInfo{
				MessageSource: types.MessageSource{Chat: carolLD, Sender: mustJID("14155550100:0@s.whatsapp.net"), IsFromMe: true,
					RecipientAlt: carolPN, SenderAlt: ownLID},
				ID: "A19", Timestamp: msgTime,
			}, &waE2E.Message{DeviceSentMessage: &waE2E.DeviceSentMessage{DestinationJID: proto.String(carolPN.String()),
				Message: &waE2E.Message{Conversation: proto.String("sent from my phone")}}}),
			want: &wabsync.InboundMessage{WAID: "A19", Chat: carolPN.String(), FromJID: "14155550100@s.whatsapp.net", FromLID: ownLID.String(),
				FromPhone: "+14155550100", FromMe: true, Timestamp: msgTime, Kind: wabsync.KindText, Text: "sent from my phone"},
		},
		{
			name: "StatusBroadcastIgnored",
			evt: incoming(types.MessageInfo{MessageSource: types.MessageSource{Chat: types.StatusBroadcastJID, Sender: bobPN},
				ID: "S1", Timestamp: msgTime}, &waE2E.Message{Conversation: proto.String("my story")}),
		},
		{
			name: "PollIgnored",
			evt:  incoming(dm("P1"), &waE2E.Message{PollCreationMessage: &waE2E.PollCreationMessage{Name: proto.String("lunch?")}}),
		},
		{
			name: "OtherProtocolMessageIgnored",
			evt: incoming(dm("P2"), &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
				Type: waE2E.ProtocolMessage_EPHEMERAL_SETTING.Enum(), EphemeralExpiration: proto.Uint32(86400)}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			h.putLID(t, bobLID.String(), bobPN.String())
			if ok := h.fake.fire(tt.evt); !ok {
				t.Fatal("handler reported failure")
			}
			got := h.rec.all()
			if tt.want == nil {
				if len(got) != 0 {
					t.Fatalf("reported %s", fmtEvents(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d events: %s", len(got), fmtEvents(got))
			}
			want := wabsync.EngineMessage{Msg: *tt.want}
			if !reflect.DeepEqual(got[0], want) {
				t.Fatalf("got\n%#v\nwant\n%#v", got[0], want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// When WabSync cannot store a message the handler fails, and the engine
// tells whatsmeow so: no ack goes to WhatsApp, which delivers it again.
func TestReceiveStoreFailureWithholdsAck(t *testing.T) {
	h := newHarness(t, true)
	h.rec.fail = errStore
	evts := []any{
		incoming(dm("F1"), &waE2E.Message{Conversation: proto.String("x")}),
		&events.Receipt{MessageSource: types.MessageSource{Chat: bobPN, Sender: bobPN}, MessageIDs: []string{"OUT1"}, Type: types.ReceiptTypeRead, Timestamp: msgTime},
		&events.UndecryptableMessage{Info: dm("F2")},
	}
	for _, evt := range evts {
		if h.fake.fire(evt) {
			t.Errorf("%T: handler reported success though storing failed", evt)
		}
	}
	h.rec.fail = nil
	for _, evt := range evts {
		if !h.fake.fire(evt) {
			t.Errorf("%T: handler reported failure", evt)
		}
	}
	// Connection events never hold anything back.
	h.rec.fail = errors.New("x")
	if !h.fake.fire(&events.OfflineSyncCompleted{}) {
		t.Error("an ignored event reported failure")
	}
}

// Media is not downloaded when it arrives; DownloadMedia fetches it later by
// its Ref, into a temporary file that is already unlinked.
func TestDownloadMedia(t *testing.T) {
	h := newHarness(t, true)
	h.fake.download = []byte("the picture bytes")
	evt := incoming(dm("M1"), &waE2E.Message{ImageMessage: imageMsg("", nil)})
	h.fake.fire(evt)
	msg := h.rec.all()[0].(wabsync.EngineMessage).Msg
	if len(h.fake.downloads) != 0 {
		t.Fatal("media downloaded on receipt")
	}
	rc, err := h.e.DownloadMedia(context.Background(), msg.Media.Ref)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 100)
	n, _ := rc.Read(data)
	if string(data[:n]) != "the picture bytes" {
		t.Fatalf("read %q", data[:n])
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	call := h.fake.downloads[0]
	if call.path != "/v/t62.7118-24/img" || string(call.key) != string(mediaKey) || string(call.sha) != string(fileSHA) ||
		string(call.enc) != string(encSHA) || call.mms != "image" || call.allowNoHash || call.tempFileWasNamed {
		t.Fatalf("download call = %+v", call)
	}

	t.Run("Expired", func(t *testing.T) {
		h.fake.downloadErr = fmt.Errorf("failed to download media from last host: %w", whatsmeow.ErrMediaDownloadFailedWith404)
		_, err := h.e.DownloadMedia(context.Background(), msg.Media.Ref)
		var ee *wabsync.EngineError
		if !errors.As(err, &ee) || ee.Code != wabsync.MsgErrMediaMissing || !ee.Permanent {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("BadRef", func(t *testing.T) {
		_, err := h.e.DownloadMedia(context.Background(), `{"v":1}`)
		var ee *wabsync.EngineError
		if !errors.As(err, &ee) || ee.Code != wabsync.MsgErrMediaMissing {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestVCardPhones(t *testing.T) {
	tests := []struct {
		vcard string
		want  []string
	}{
		{"TEL;type=CELL;type=VOICE;waid=14155550123:+1 415-555-0123", []string{"+14155550123"}},
		{"item1.TEL;waid=4915112345678:+49 151 12345678\nitem1.X-ABLabel:Mobile", []string{"+4915112345678"}},
		{"TEL:tel:+44-20-7946-0958", []string{"+442079460958"}},
		{"FN:Nobody\nNOTE:TEL:123", nil},
	}
	for _, tt := range tests {
		if got := vcardPhones(tt.vcard); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("vcardPhones(%q) = %v, want %v", tt.vcard, got, tt.want)
		}
	}
}
