package main

import (
	"bytes"
	"context"
	"image/png"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
)

func TestSessionLinkByQR(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	s, _ := ts.sandboxSession("qr", client.SessionConfig{})
	if s.Status != "stopped" {
		t.Fatalf("new session status %s", s.Status)
	}
	t.Run("QRBeforeConnectIsConflict", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions/"+s.ID+"/qr", testAdminToken, nil)
		if r.Status != 409 || r.Err(t).Code != "CONFLICT" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	if _, err := ts.Admin.Connect(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(s.ID, "scan_qr", 5*time.Second)
	qr, err := ts.Admin.QRCode(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if qr.QR == "" || !qr.ExpiresAt.After(time.Now()) {
		t.Fatalf("qr %+v", qr)
	}
	img, err := ts.Admin.QRCodePNG(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(img)); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	t.Run("ScanUnknownQR", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sandbox/scan", testAdminToken, map[string]string{"qr": "2@nope"})
		if r.Status != 422 || r.Err(t).Details["qr"] == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	r := ts.Do("POST", "/api/v1/sandbox/scan", testAdminToken, map[string]string{"qr": qr.QR})
	if r.Status != 200 {
		t.Fatalf("scan: %d %s", r.Status, r.Body)
	}
	got := ts.waitStatus(s.ID, "connected", 5*time.Second)
	if !strings.HasPrefix(got.Phone, "+155501") || got.ConnectedAt == nil {
		t.Fatalf("connected session %+v", got)
	}
	t.Run("ConnectAgainIsHarmless", func(t *testing.T) {
		again, err := ts.Admin.Connect(ctx, s.ID)
		if err != nil || again.Status != "connected" {
			t.Fatalf("%+v %v", again, err)
		}
	})
	t.Run("LogoutNeedsNewScan", func(t *testing.T) {
		out, err := ts.Admin.Logout(ctx, s.ID)
		if err != nil || out.Status != "logged_out" {
			t.Fatalf("%+v %v", out, err)
		}
		if _, err := ts.Admin.Connect(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
		ts.waitStatus(s.ID, "scan_qr", 5*time.Second)
		qr2, err := ts.Admin.QRCode(ctx, s.ID)
		if err != nil || qr2.QR == qr.QR {
			t.Fatalf("want a new QR: %+v %v", qr2, err)
		}
	})
}

func TestSessionAutoLinkAndDisconnect(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	phone := "+15550177777"
	s, _ := ts.linkedSession("auto", client.SessionConfig{Phone: &phone})
	if s.Phone != phone {
		t.Fatalf("phone %v", s.Phone)
	}
	d, err := ts.Admin.Disconnect(ctx, s.ID)
	if err != nil || d.Status != "stopped" {
		t.Fatalf("%+v %v", d, err)
	}
	// The link is kept: connecting again needs no scan.
	if _, err := ts.Admin.Connect(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(s.ID, "connected", 5*time.Second)
	if _, err := ts.Admin.Restart(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(s.ID, "connected", 5*time.Second)
}

func TestSessionAccessRules(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	a, tokA := ts.sandboxSession("a", client.SessionConfig{})
	b, _ := ts.sandboxSession("b", client.SessionConfig{})
	ca := ts.Client(tokA)
	t.Run("OwnByID", func(t *testing.T) {
		if s, err := ca.GetSession(ctx, a.ID); err != nil || s.ID != a.ID {
			t.Fatalf("%+v %v", s, err)
		}
	})
	t.Run("Me", func(t *testing.T) {
		if s, err := ca.GetSession(ctx, "me"); err != nil || s.ID != a.ID {
			t.Fatalf("%+v %v", s, err)
		}
	})
	t.Run("OtherSessionIsNotFound", func(t *testing.T) {
		_, err := ca.GetSession(ctx, b.ID)
		if !client.IsCode(err, "NOT_FOUND") {
			t.Fatalf("want NOT_FOUND, got %v", err)
		}
		r := ts.Do("POST", "/api/v1/sessions/"+b.ID+"/connect", tokA, nil)
		if r.Status != 404 {
			t.Fatalf("connect other: %d", r.Status)
		}
	})
	t.Run("AdminOnlyRoutes", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{"GET", "/api/v1/sessions"}, {"POST", "/api/v1/sessions"}, {"DELETE", "/api/v1/sessions/" + a.ID},
			{"POST", "/api/v1/sandbox/scan"},
		} {
			r := ts.Do(c.method, c.path, tokA, "{}")
			if r.Status != 403 || r.Err(t).Code != "FORBIDDEN" {
				t.Errorf("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
			}
		}
	})
	t.Run("TokenRotation", func(t *testing.T) {
		newTok, err := ca.RotateToken(ctx, "me")
		if err != nil || !strings.HasPrefix(newTok, "WBT|") || len(newTok) < 36 {
			t.Fatalf("%q %v", newTok, err)
		}
		if _, err := ca.GetSession(ctx, "me"); !client.IsCode(err, "UNAUTHORIZED") {
			t.Fatalf("old token still works: %v", err)
		}
		if s, err := ts.Client(newTok).GetSession(ctx, "me"); err != nil || s.ID != a.ID {
			t.Fatalf("new token: %+v %v", s, err)
		}
	})
	t.Run("DeleteRemovesToken", func(t *testing.T) {
		c, tok := ts.sandboxSession("c", client.SessionConfig{})
		if err := ts.Admin.DeleteSession(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Client(tok).GetSession(ctx, "me"); !client.IsCode(err, "UNAUTHORIZED") {
			t.Fatalf("deleted session's token: %v", err)
		}
		if _, err := ts.Admin.GetSession(ctx, c.ID); !client.IsCode(err, "NOT_FOUND") {
			t.Fatalf("deleted session: %v", err)
		}
	})
}

func TestSessionBadInput(t *testing.T) {
	ts := mustRunMain(t)
	cases := []struct {
		name, body, field string
		status            int
	}{
		{"UnknownEngine", `{"name":"x","engine":"telegram"}`, "engine", 422},
		{"BadConfigField", `{"name":"x","engine":"sandbox","config":{"colour":"red"}}`, "config.colour", 422},
		{"NameTooLong", `{"name":"` + strings.Repeat("n", 101) + `","engine":"sandbox"}`, "name", 422},
		{"NameMissing", `{"engine":"sandbox"}`, "name", 422},
		{"BadPhone", `{"name":"x","engine":"sandbox","config":{"phone":"call me"}}`, "config.phone", 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ts.Do("POST", "/api/v1/sessions", testAdminToken, c.body)
			if r.Status != c.status || r.Err(t).Details[c.field] == "" {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
		})
	}
	t.Run("NothingHalfCreated", func(t *testing.T) {
		l, err := ts.Admin.ListSessions(context.Background(), nil)
		if err != nil || len(l.Items) != 0 {
			t.Fatalf("sessions after failed creates: %+v %v", l, err)
		}
	})
	t.Run("InvalidCursor", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions?cursor=garbage", testAdminToken, nil)
		if r.Status != 400 || r.Err(t).Details["cursor"] == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	t.Run("InvalidLimit", func(t *testing.T) {
		r := ts.Do("GET", "/api/v1/sessions?limit=1000", testAdminToken, nil)
		if r.Status != 400 || r.Err(t).Details["limit"] == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
}

func TestSessionListPagination(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	want := map[string]bool{}
	for i := 0; i < 7; i++ {
		s, _ := ts.sandboxSession("p", client.SessionConfig{})
		want[s.ID] = true
	}
	seen := map[string]bool{}
	limit := 3
	params := &client.ListSessionsParams{Limit: &limit}
	for pages := 0; ; pages++ {
		l, err := ts.Admin.ListSessions(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range l.Items {
			if seen[s.ID] {
				t.Fatalf("%s listed twice", s.ID)
			}
			seen[s.ID] = true
		}
		// A session created while paging must not disturb the walk.
		if pages == 0 {
			s, _ := ts.sandboxSession("late", client.SessionConfig{})
			want[s.ID] = true
		}
		if !l.HasMore {
			break
		}
		params.Cursor = l.NextCursor
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d of %d sessions", len(seen), len(want))
	}
	st := client.SessionStatus("connected")
	l, err := ts.Admin.ListSessions(ctx, &client.ListSessionsParams{Status: &st})
	if err != nil || len(l.Items) != 0 {
		t.Fatalf("status filter: %+v %v", l, err)
	}
}

// TestSessionEventsStream checks that SSE delivers status changes live and
// resumes from Last-Event-ID without loss or duplicates.
func TestSessionEventsStream(t *testing.T) {
	ts := mustRunMain(t)
	s, tok := ts.sandboxSession("sse", client.SessionConfig{})
	c := ts.Client(tok)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []client.Event
	zero := int64(0)
	done := make(chan error, 1)
	go func() {
		done <- c.StreamEvents(ctx, "me", &client.StreamSessionEventsParams{After: &zero}, func(ev *client.Event) error {
			mu.Lock()
			got = append(got, *ev)
			mu.Unlock()
			return nil
		})
	}()
	yes := true
	if _, err := ts.Admin.UpdateSession(ctx, s.ID, client.UpdateSessionRequest{Config: &client.SessionConfig{AutoLink: &yes}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(s.ID, "connected", 5*time.Second)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	deadline := time.Now().Add(5 * time.Second)
	for count() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	live := append([]client.Event(nil), got...)
	mu.Unlock()
	if len(live) < 2 || string(live[len(live)-1].Type) != "session.status" {
		t.Fatalf("live events: %+v", live)
	}
	for i, ev := range live {
		if ev.Sequence != int64(i+1) {
			t.Fatalf("event %d has sequence %d", i, ev.Sequence)
		}
	}
	cancel()
	<-done

	// Resume after the first event: the rest come again, once each, and
	// new ones follow.
	if _, err := c.Disconnect(context.Background(), "me"); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	first := "1"
	var resumed []client.Event
	err := c.StreamEvents(ctx2, "me", &client.StreamSessionEventsParams{LastEventID: &first}, func(ev *client.Event) error {
		resumed = append(resumed, *ev)
		if string(ev.Type) == "session.status" && strings.Contains(string(ev.Data), `"stopped"`) {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Fatalf("stream ended with %v after %d events", err, len(resumed))
	}
	for i, ev := range resumed {
		if ev.Sequence != int64(i+2) {
			t.Fatalf("resumed event %d has sequence %d (want %d): loss or duplicate", i, ev.Sequence, i+2)
		}
	}
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

func TestSessionsResumeAfterRestart(t *testing.T) {
	cfg := testConfig(t)
	ts := mustRunConfig(t, cfg)
	var ids []string
	for i := 0; i < 5; i++ {
		s, _ := ts.linkedSession("r", client.SessionConfig{})
		ids = append(ids, s.ID)
	}
	stopped, _ := ts.linkedSession("stays-stopped", client.SessionConfig{})
	if _, err := ts.Admin.Disconnect(context.Background(), stopped.ID); err != nil {
		t.Fatal(err)
	}
	ts.Close()
	ts2 := mustRunConfig(t, cfg)
	for _, id := range ids {
		ts2.waitStatus(id, "connected", 10*time.Second)
	}
	if s, _ := ts2.Admin.GetSession(context.Background(), stopped.ID); s.Status != "stopped" {
		t.Fatalf("a disconnected session came back as %s", s.Status)
	}
}

func TestSessionGivesUpAfterRepeatedFailures(t *testing.T) {
	ts := mustRunMain(t)
	n := 50
	s, _ := ts.sandboxSession("flaky", client.SessionConfig{FailConnects: &n})
	if _, err := ts.Admin.Connect(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	got := ts.waitStatus(s.ID, "failed", 20*time.Second)
	if !strings.Contains(got.StatusReason, "attempts") {
		t.Fatalf("reason %q", got.StatusReason)
	}
	// The attempts were bounded: count the transitions into reconnecting.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	zero := int64(0)
	retries := 0
	err := ts.Admin.StreamEvents(ctx, s.ID, &client.StreamSessionEventsParams{After: &zero}, func(ev *client.Event) error {
		var d client.SessionStatusData
		if err := ev.DecodeData(&d); err != nil {
			return err
		}
		switch d.Status {
		case "reconnecting":
			retries++
		case "failed":
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Fatalf("stream: %v", err)
	}
	if retries == 0 || retries >= 8 {
		t.Fatalf("%d retries before failing; want a few, fewer than the cap of 8 attempts", retries)
	}
}

func TestSessionReconnectsAfterDrop(t *testing.T) {
	ts := mustRunMain(t)
	s, _ := ts.linkedSession("drop", client.SessionConfig{})
	r := ts.Do("POST", "/api/v1/sandbox/sessions/"+s.ID+"/drop", testAdminToken, map[string]int{"down_for_ms": 200})
	if r.Status != 200 {
		t.Fatalf("drop: %d %s", r.Status, r.Body)
	}
	// It notices, retries with backoff while the network is down, and comes back.
	ts.waitStatus(s.ID, "connected", 10*time.Second)
	got, _ := ts.Admin.GetSession(context.Background(), s.ID)
	if got.Status != "connected" {
		t.Fatalf("status %s", got.Status)
	}
}

// TestShutdownEndsStreams: an open event stream does not hold up a
// graceful shutdown; the stream ends and the client can resume elsewhere.
func TestShutdownEndsStreams(t *testing.T) {
	ts := mustRunMain(t)
	_, tok := ts.sandboxSession("sse", client.SessionConfig{})
	c := ts.Client(tok)
	first := make(chan struct{})
	var once sync.Once
	ended := make(chan error, 1)
	go func() {
		ended <- c.StreamEvents(context.Background(), "me", nil, func(*client.Event) error {
			once.Do(func() { close(first) })
			return nil
		})
	}()
	// The stream is open and live once it carries an event made after it
	// started: connecting makes some.
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	connected := false
	for waiting := true; waiting; {
		select {
		case <-first:
			waiting = false
		case <-tick.C:
			if !connected {
				if _, err := c.Connect(context.Background(), "me"); err != nil {
					t.Fatal(err)
				}
				connected = true
			}
		case err := <-ended:
			t.Fatalf("the stream ended before the shutdown: %v", err)
		case <-deadline:
			t.Fatal("the stream carried no event")
		}
	}
	closed := make(chan struct{})
	go func() { ts.Close(); close(closed) }()
	select {
	case <-ended:
	case <-time.After(15 * time.Second):
		t.Fatal("the stream did not end on shutdown")
	}
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown waited for the stream")
	}
}

func TestSessionLinkByPairCode(t *testing.T) {
	ts := mustRunMain(t)
	ctx := context.Background()
	s, tok := ts.sandboxSession("pair", client.SessionConfig{})
	c := ts.Client(tok)
	t.Run("NotWaitingIsConflict", func(t *testing.T) {
		if _, err := c.PairCode(ctx, "me", "+15550176543"); !client.IsCode(err, "CONFLICT") {
			t.Fatalf("want CONFLICT before connect, got %v", err)
		}
	})
	if _, err := c.Connect(ctx, "me"); err != nil {
		t.Fatal(err)
	}
	ts.waitStatus(s.ID, "scan_qr", 5*time.Second)
	t.Run("BadPhone", func(t *testing.T) {
		r := ts.Do("POST", "/api/v1/sessions/me/pair-code", tok, map[string]string{"phone": "not a phone"})
		if r.Status != 422 || r.Err(t).Details["phone"] == "" {
			t.Fatalf("got %d %s", r.Status, r.Body)
		}
	})
	code, err := c.PairCode(ctx, "me", "+1 555 017-6543")
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 9 || code[4] != '-' {
		t.Fatalf("code %q is not ABCD-EFGH", code)
	}
	got := ts.waitStatus(s.ID, "connected", 5*time.Second)
	if got.Phone != "+15550176543" {
		t.Fatalf("linked with phone %q", got.Phone)
	}
}
