package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// streamEndGuard bounds the wait for a stream that should end; it is shorter
// than the heartbeat (15 s), at which a stream also checks its token, so
// that the test shows the stream ending because it was told, not by the
// periodic check.
const streamEndGuard = 10 * time.Second

// liveStream is an event stream read in the background.
type liveStream struct {
	mu    sync.Mutex
	data  []string // each event's data, as sent
	ended chan error
}

// openStream opens a live stream of session with token on ts and returns
// once it is known to be open: it carries a message that from sends to
// to after the stream started.
func openStream(t *testing.T, ts *testServer, token, session string, from, to *peer) *liveStream {
	t.Helper()
	ls := &liveStream{ended: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opened := make(chan struct{})
	var once sync.Once
	go func() {
		ls.ended <- ts.Client(token).StreamEvents(ctx, session, nil, func(ev *client.Event) error {
			ls.mu.Lock()
			ls.data = append(ls.data, string(ev.Data))
			ls.mu.Unlock()
			if strings.Contains(string(ev.Data), "stream-opened") {
				once.Do(func() { close(opened) })
			}
			return nil
		})
	}()
	// The stream is open once it carries a message sent after it started;
	// keep sending until one arrives (the first may precede the stream).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for {
		if _, err := from.C.SendText(context.Background(), "me", client.SendTextRequest{To: to.Phone, Text: "stream-opened"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-opened:
			return ls
		case err := <-ls.ended:
			t.Fatalf("the stream ended before it carried an event: %v", err)
		case <-deadline:
			t.Fatal("the stream carried no event")
		case <-tick.C:
		}
	}
}

// carried reports whether an event with text in its data came through.
func (ls *liveStream) carried(text string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, d := range ls.data {
		if strings.Contains(d, text) {
			return true
		}
	}
	return false
}

// waitEnd waits until the stream ends.
func (ls *liveStream) waitEnd(t *testing.T, why string) {
	t.Helper()
	select {
	case err := <-ls.ended:
		if err != nil {
			t.Fatalf("the stream ended with an error after %s: %v", why, err)
		}
	case <-time.After(streamEndGuard):
		t.Fatalf("the stream is still open %v after %s", streamEndGuard, why)
	}
}

// sendAndWait sends text from from to to and waits until to has it
// (read with toClient, which holds a valid token for to's session).
func sendAndWait(t *testing.T, from *peer, to *peer, toClient *client.Client, text string) {
	t.Helper()
	m, err := from.C.SendText(context.Background(), "me", client.SendTextRequest{To: to.Phone, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	at := waitStatusOf(t, from, m.ID, "delivered")
	inbound(t, &peer{Session: to.Session, C: toClient}, at.WAID)
}

// TestStreamEndsWithItsToken: a stream opened with a session token ends when
// the token is rotated, and a stream of any token ends when its session is
// deleted; no event made after either goes out on it. A stream opened with
// the admin token outlives the rotation of the session's token.
func TestStreamEndsWithItsToken(t *testing.T) {
	ts := mustRunMain(t)
	alice := ts.linkedPeer("alice", client.SessionConfig{})

	t.Run("TokenRotated", func(t *testing.T) {
		bob := ts.linkedPeer("bob-rotated", client.SessionConfig{})
		ls := openStream(t, ts, bob.Token, "me", alice, bob)
		admin := openStream(t, ts, testAdminToken, bob.ID, alice, bob)
		newTok, err := bob.C.RotateToken(context.Background(), "me")
		if err != nil {
			t.Fatal(err)
		}
		sendAndWait(t, alice, bob, ts.Client(newTok), "after-rotation-secret")
		ls.waitEnd(t, "the token was rotated")
		if ls.carried("after-rotation-secret") {
			t.Error("a message received after the rotation went out on the old token's stream")
		}
		testutil.Eventually(t, 10*time.Second, func() bool { return admin.carried("after-rotation-secret") },
			"the admin token's stream stopped carrying the session's events after the session token was rotated")
	})

	t.Run("SessionDeleted", func(t *testing.T) {
		bob := ts.linkedPeer("bob-deleted", client.SessionConfig{})
		ls := openStream(t, ts, bob.Token, "me", alice, bob)
		admin := openStream(t, ts, testAdminToken, bob.ID, alice, bob)
		if err := ts.Admin.DeleteSession(context.Background(), bob.ID); err != nil {
			t.Fatal(err)
		}
		ls.waitEnd(t, "the session was deleted")
		admin.waitEnd(t, "the session was deleted")
	})
}

// TestStreamEndsWithItsTokenOnEveryNode: on two nodes sharing PostgreSQL, a
// stream opened on node A ends when its token is rotated, or its session
// deleted, through node B.
func TestStreamEndsWithItsTokenOnEveryNode(t *testing.T) {
	testutil.RequirePostgres(t)
	cfg := testConfig(t)
	cfgA, cfgB := cfg, cfg
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	cfgB.DataDir = t.TempDir()
	a := mustRunConfig(t, cfgA)
	b := mustRunConfig(t, cfgB)
	alice := a.linkedPeer("alice", client.SessionConfig{})

	t.Run("TokenRotated", func(t *testing.T) {
		bob := a.linkedPeer("bob-rotated", client.SessionConfig{})
		ls := openStream(t, a, bob.Token, "me", alice, bob)
		newTok, err := b.Client(bob.Token).RotateToken(context.Background(), "me")
		if err != nil {
			t.Fatal(err)
		}
		sendAndWait(t, alice, bob, a.Client(newTok), "after-rotation-secret")
		ls.waitEnd(t, "the token was rotated on the other node")
		if ls.carried("after-rotation-secret") {
			t.Error("a message received after the rotation went out on the old token's stream")
		}
	})

	t.Run("SessionDeleted", func(t *testing.T) {
		bob := a.linkedPeer("bob-deleted", client.SessionConfig{})
		ls := openStream(t, a, testAdminToken, bob.ID, alice, bob)
		if err := b.Admin.DeleteSession(context.Background(), bob.ID); err != nil {
			t.Fatal(err)
		}
		ls.waitEnd(t, "the session was deleted on the other node")
	})
}

// TestStreamCaps: past the cap per session token, and past the cap of the
// server, a new stream is refused with 429 RATE_LIMITED and Retry-After; the
// admin token has only the server's cap; a closed stream frees its place.
func TestStreamCaps(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.MaxStreams, c.MaxStreamsPerToken = 5, 2 })
	alice := ts.linkedPeer("alice", client.SessionConfig{})
	bob := ts.linkedPeer("bob", client.SessionConfig{})

	// open starts a stream and returns its status; a 200 stays open until
	// its cancel is called.
	open := func(token, session string) (int, http.Header, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL()+"/api/v1/sessions/"+session+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := ts.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			resp.Body.Close()
		}
		return resp.StatusCode, resp.Header, cancel
	}
	refused := func(status int, h http.Header, what string) {
		t.Helper()
		if status != 429 {
			t.Fatalf("%s: status %d, want 429", what, status)
		}
		if h.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", what)
		}
	}

	st, _, closeFirst := open(bob.Token, "me")
	if st != 200 {
		t.Fatalf("first stream: %d", st)
	}
	if st, _, _ := open(bob.Token, "me"); st != 200 {
		t.Fatalf("second stream: %d", st)
	}
	st, h, _ := open(bob.Token, "me")
	refused(st, h, "a third stream of one session token (cap 2)")
	for i := range 3 {
		if st, _, _ := open(testAdminToken, bob.ID); st != 200 {
			t.Fatalf("admin stream %d (the admin token has no cap of its own): %d", i+1, st)
		}
	}
	st, h, _ = open(alice.Token, "me")
	refused(st, h, "a sixth stream on the server (cap 5)")

	closeFirst()
	testutil.Eventually(t, 10*time.Second, func() bool {
		st, _, _ := open(alice.Token, "me")
		return st == 200
	}, "a closed stream did not free its place")
}
