package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

func TestPanicBecomesEnvelope(t *testing.T) {
	db := testutil.MustOpenDB(t)
	var logs bytes.Buffer
	s := New(Config{}, db, nil, Deps{}, slog.New(slog.NewTextHandler(&logs, nil)))
	s.mux.Handle("GET /boom", s.wrap(route{"GET /boom", public, func(w http.ResponseWriter, r *http.Request) error {
		panic("secret detail 42")
	}}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/boom", nil)
	req.Header.Set("X-Request-Id", "req-abc")
	s.ServeHTTP(rec, req)
	var env errorEnvelope
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if rec.Code != 500 || env.Code != "INTERNAL_ERROR" || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), "req-abc") || !strings.Contains(logs.String(), "panic") {
		t.Fatalf("the panic is not logged with the request id: %s", logs.String())
	}
	if strings.Contains(logs.String(), "goroutine ") {
		t.Fatalf("a stack trace reached the log: %s", logs.String())
	}
}

func TestDecodeStrictNamesEveryField(t *testing.T) {
	var req createSessionRequest
	err := decodeStrict([]byte(`{"name": 1, "x": 2, "config": {"auto_link": "no", "y": 3}}`), &req)
	e, ok := err.(interface{ Error() string })
	if !ok || err == nil {
		t.Fatal("want an error")
	}
	_ = e
	ve := err.(*wabsyncError)
	for _, f := range []string{"name", "x", "config.auto_link", "config.y"} {
		if _, ok := ve.Details[f]; !ok {
			t.Errorf("%s not named: %v", f, ve.Details)
		}
	}
}

func TestCursor(t *testing.T) {
	for _, c := range []string{"", "!!", encodeCursor("")} {
		if _, err := decodeCursor(c); err == nil {
			t.Errorf("cursor %q accepted", c)
		}
	}
	if v, err := decodeCursor(encodeCursor("ses_1")); err != nil || v != "ses_1" {
		t.Fatalf("round trip: %q %v", v, err)
	}
}

// /metrics shows where a change's time goes in the store's writer: how long
// requests' changes wait for their batch, and how long commits take.
func TestMetricsShowWriterTimings(t *testing.T) {
	db := testutil.MustOpenDB(t)
	s := New(Config{MetricsPublic: true}, db, nil, Deps{}, slog.New(slog.DiscardHandler))
	for range 3 {
		if err := db.Update(t.Context(), func(tx *store.Tx) error { return tx.Notify(store.ChanOutbox, "x") }); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`wabsync_db_write_wait_seconds_bucket{le="0.001"}`, "wabsync_db_write_wait_seconds_count ",
		`wabsync_db_commit_seconds_bucket{le="+Inf"}`, "wabsync_db_commit_seconds_sum ", "wabsync_db_sync_seconds_count "} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics (%d) lacks %s:\n%.2000s", rec.Code, want, body)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "wabsync_db_write_wait_seconds_count ") || strings.HasPrefix(line, "wabsync_db_commit_seconds_count ") ||
			strings.HasPrefix(line, "wabsync_db_sync_seconds_count ") && db.Dialect() == store.SQLite {
			if n, _ := strconv.Atoi(strings.Fields(line)[1]); n < 3 {
				t.Fatalf("%s: want at least the 3 changes made", line)
			}
		}
	}
}

// A 201 to a send is the message as stored, not encoded again: it must be
// byte for byte what the envelope of the message renders to.
func TestAcceptedBodyIsTheRenderedMessage(t *testing.T) {
	db := testutil.MustOpenDB(t)
	s := New(Config{}, db, nil, Deps{}, slog.New(slog.DiscardHandler))
	tok := store.NewSessionToken()
	sess := &wabsync.Session{ID: wabsync.NewID("ses"), Name: "s", Engine: wabsync.EngineSandbox, Status: wabsync.StatusConnected}
	if err := db.CreateSession(t.Context(), sess, store.HashToken(tok)); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"hello", `quotes " and <tags> & "unicode" é ✓`} {
		body, _ := json.Marshal(map[string]any{"to": "+15550000002", "text": text, "mentions": []string{"+15550000003"}})
		req := httptest.NewRequest("POST", "/api/v1/sessions/me/messages/text", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		var got struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		m, err := db.GetMessage(t.Context(), sess.ID, got.Data.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, err := jsonMarshal(successEnvelope{Success: true, Message: "Message queued", Data: s.shown(m)})
		if err != nil {
			t.Fatal(err)
		}
		if want = append(want, '\n'); !bytes.Equal(rec.Body.Bytes(), want) {
			t.Fatalf("201 body\n%s\nwant\n%s", rec.Body, want)
		}
	}
}
