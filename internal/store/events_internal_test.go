package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
)

// TestEncodeEvent: the hand-made event JSON is byte for byte what
// json.Marshal makes.
func TestEncodeEvent(t *testing.T) {
	sid, odd := "ses_01abc", "ses_<\"odd\">\\\u00e9"
	data, _ := json.Marshal(map[string]any{"text": "hé <b>\"x\"</b>", "n": 1})
	at := time.Date(2026, 11, 25, 4, 5, 6, 789000, time.UTC)
	for _, ev := range []*wabsync.Event{
		{ID: "evt_1", Type: wabsync.EventMessageSent, SessionID: &sid, Sequence: 42, CreatedAt: at, Data: data},
		{ID: "evt_2", Type: wabsync.EventWebhookTest, SessionID: nil, Sequence: 1, CreatedAt: at.Truncate(time.Second), Data: data},
		{ID: "evt_3", Type: "x", SessionID: &odd, Sequence: -1, CreatedAt: at, Data: nil},
		{ID: "evt_\n", Type: "<t>", SessionID: &sid, Sequence: 0, CreatedAt: time.Time{}, Data: json.RawMessage(`[1,2]`)},
	} {
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("encodeEvent:\n got %s\nwant %s", got, want)
		}
	}
}

// TestStoredBodyIsShownMessage: without media, the stored body of a message
// is exactly its API form, which message events reuse.
func TestStoredBodyIsShownMessage(t *testing.T) {
	at := time.Date(2026, 11, 25, 4, 5, 6, 7, time.UTC)
	m := &wabsync.Message{ID: "msg_1", SessionID: "ses_1", Sequence: 3, Direction: wabsync.DirectionOut, Chat: "1@s.whatsapp.net",
		WAID: "3EB0", To: "+1", Kind: wabsync.KindText, Text: "hi <there> & \"you\"", Status: wabsync.MsgSent,
		StatusHistory: []wabsync.StatusChange{{Status: wabsync.MsgQueued, At: at}}, CreatedAt: at, UpdatedAt: at, Timestamp: &at,
		Location: &wabsync.Location{Latitude: 1, Longitude: 2}, Mentions: []string{"+2"}}
	body, err := encodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(m)
	if body != string(want) {
		t.Fatalf("stored body differs from the API form:\n got %s\nwant %s", body, want)
	}
}
