package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// serverProcess is the real wabsync binary running as a child process.
type serverProcess struct {
	t    testing.TB
	bin  string
	env  []string
	url  string
	cmd  *exec.Cmd
	logs *logSink
	done chan struct{}
}

// buildBinary builds cmd/wabsync into a temporary directory.
func buildBinary(tb testing.TB) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("no go command to build the server with: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "wabsync")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess starts the binary and waits until it answers its health check.
func (p *serverProcess) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "serve")
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.bin, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/api/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("server exited at start:\n%s", p.logs)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("server not healthy after 30s: %v\n%s", err, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL and waits for it to be gone.
func (p *serverProcess) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// sentRecord is what the client knows of one send.
type sentRecord struct {
	text     string
	accepted bool   // a 201 came back
	id, waID string // from the 201
}

// TestCrashAcceptedMessagesSurviveSIGKILL sends messages between two sandbox
// sessions of the real binary at a high rate, kills it with SIGKILL in the
// middle, starts it again on the same data, and checks that every message
// answered 201 reaches the recipient exactly once and ends delivered.
func TestCrashAcceptedMessagesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t0 := time.Now()
	bin := buildBinary(t)
	t.Logf("built in %v", time.Since(t0).Round(time.Millisecond))
	dbURL := testutil.DatabaseURL(t)
	addr := freeAddr(t)
	p := &serverProcess{t: t, bin: bin, url: "http://" + addr, logs: &logSink{}, env: []string{
		"WABSYNC_ADDR=" + addr,
		"WABSYNC_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"WABSYNC_DATABASE_URL=" + dbURL,
		"WABSYNC_ADMIN_TOKEN=" + testAdminToken,
		"WABSYNC_RATE_LIMIT=1000000",
		// Paced slower than the API accepts, so that a backlog of queued
		// messages is in the outbox when the process dies.
		"WABSYNC_SEND_RATE=300",
		"WABSYNC_SEND_BURST=20",
		"WABSYNC_LOG_LEVEL=warn",
		// The restarted process is a new node (the default: a random node
		// id); a short lease lets it take the dead one's sessions over soon.
		"WABSYNC_LEASE_TTL=2s",
	}}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs)
		}
	})
	p.start()
	ctx := context.Background()
	hc := &http.Client{Transport: mustValidator(t).Transport(t, nil), Timeout: 30 * time.Second}
	newClient := func(token string) *client.Client {
		c, err := client.New(p.url, token, client.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin := newClient(testAdminToken)
	link := func(name string) *peer {
		eng := client.Engine("sandbox")
		c, err := admin.CreateSession(ctx, client.CreateSessionRequest{Name: name, Engine: &eng, Config: &client.SessionConfig{AutoLink: ptr(true)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Connect(ctx, c.Session.ID); err != nil {
			t.Fatal(err)
		}
		pr := &peer{Session: &c.Session, Token: c.Token, C: newClient(c.Token)}
		pr.Session = waitConnected(t, admin, c.Session.ID, time.Time{})
		return pr
	}
	a, b := link("crash-a"), link("crash-b")
	t.Logf("started and linked in %v", time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()

	// Phase 1: several goroutines send as fast as they can; the process is
	// killed once 500 have been accepted, with requests in flight.
	const killAfter = 500
	var (
		mu       sync.Mutex
		records  []*sentRecord
		accepted atomic.Int64
		killed   = make(chan struct{})
		wg       sync.WaitGroup
	)
	send := func(phase string, g, i int) (*sentRecord, error) {
		r := &sentRecord{text: fmt.Sprintf("%s g%d #%d", phase, g, i)}
		mu.Lock()
		records = append(records, r)
		mu.Unlock()
		m, err := a.C.SendText(ctx, "me", client.SendTextRequest{To: b.Phone, Text: r.text})
		if err != nil {
			return r, err
		}
		mu.Lock()
		r.accepted, r.id, r.waID = true, m.ID, m.WAID
		mu.Unlock()
		accepted.Add(1)
		return r, nil
	}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if _, err := send("before", g, i); err != nil {
					select {
					case <-killed:
						return // the server is gone: expected
					default:
						t.Errorf("send before the kill: %v", err)
						return
					}
				}
			}
		}()
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return accepted.Load() >= killAfter }, "%d of %d accepted", accepted.Load(), killAfter)
	close(killed)
	p.kill()
	wg.Wait()
	hc.CloseIdleConnections()
	beforeKill := accepted.Load()
	t.Logf("%d accepted in %v, then SIGKILL", beforeKill, time.Since(t1).Round(time.Millisecond))
	t2 := time.Now()

	// Phase 2: the same binary on the same data; the sessions reconnect by
	// themselves, and a few more messages go on top.
	restarted := time.Now().UTC()
	p.start()
	// The stored status still says connected (the killed process could not
	// say otherwise): wait for a connection made by the new process.
	waitConnected(t, admin, a.ID, restarted)
	waitConnected(t, admin, b.ID, restarted)
	for i := range 50 {
		if _, err := send("after", 0, i); err != nil {
			t.Fatalf("send after restart: %v", err)
		}
	}

	t.Logf("restarted, reconnected and sent 50 more in %v", time.Since(t2).Round(time.Millisecond))
	t3 := time.Now()
	mu.Lock()
	want := map[string]*sentRecord{}
	var nAccepted, nUnknown int
	for _, r := range records {
		want[r.text] = r
		if r.accepted {
			nAccepted++
		} else {
			nUnknown++
		}
	}
	mu.Unlock()
	t.Logf("accepted %d before SIGKILL (%d after restart), %d requests without an answer", beforeKill, nAccepted-int(beforeKill), nUnknown)

	// Every message A has (the accepted ones and any unanswered ones that
	// were stored) ends delivered, and B has each exactly once.
	// Cheap polls first (is anything of A's not yet delivered?), then the
	// whole lists once.
	testutil.Eventually(t, 60*time.Second, func() bool {
		for _, st := range []client.MessageStatus{"queued", "sending", "sent"} {
			l, err := a.C.ListMessages(ctx, "me", &client.ListMessagesParams{Status: &st, Limit: ptr(1)})
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			if len(l.Items) > 0 {
				return false
			}
		}
		return true
	}, "A's messages are not all delivered")
	outs := allMessages(t, a, client.ListMessagesParams{Direction: ptr(client.Direction("out"))})
	ins := allMessages(t, b, client.ListMessagesParams{Direction: ptr(client.Direction("in"))})
	for _, m := range outs {
		if m.Status != "delivered" {
			t.Errorf("A's %q is %s", *m.Text, m.Status)
		}
	}
	t.Logf("all delivered %v after", time.Since(t3).Round(time.Millisecond))
	outByText := map[string]client.Message{}
	for _, m := range outs {
		text := *m.Text
		if _, dup := outByText[text]; dup {
			t.Errorf("A has %q twice", text)
		}
		outByText[text] = m
		r := want[text]
		switch {
		case r == nil:
			t.Errorf("A has a message nobody sent: %q", text)
		case r.accepted && (r.id != m.ID || r.waID != m.WAID):
			t.Errorf("%q: stored as %s/%s, accepted as %s/%s", text, m.ID, m.WAID, r.id, r.waID)
		}
		wantHistory(t, &m, "queued", "sending", "sent", "delivered")
	}
	inByText := map[string]int{}
	inByWAID := map[string]int{}
	for _, m := range ins {
		inByText[*m.Text]++
		inByWAID[m.WAID]++
		if o, ok := outByText[*m.Text]; !ok || o.WAID != m.WAID {
			t.Errorf("B received %q (%s), which A does not have with that wa_id", *m.Text, m.WAID)
		}
	}
	lost, dups := 0, 0
	for text, r := range want {
		n := inByText[text]
		if r.accepted && n == 0 {
			lost++
			if lost <= 10 {
				t.Errorf("accepted message %q (%s) never reached B", text, r.id)
			}
		}
		if n > 1 {
			dups++
			t.Errorf("B received %q %d times", text, n)
		}
	}
	for w, n := range inByWAID {
		if n > 1 {
			t.Errorf("B has wa_id %s %d times", w, n)
		}
	}
	if _, ok := outByText["after g0 #49"]; !ok {
		t.Errorf("the last message after the restart is missing")
	}
	t.Logf("A has %d messages, all delivered; B received %d; lost %d, duplicated %d", len(outs), len(ins), lost, dups)
	if lost > 0 || dups > 0 {
		t.Fatalf("lost %d accepted messages, duplicated %d", lost, dups)
	}
}

// waitConnected waits until a session is connected by a connection made
// after since.
func waitConnected(tb testing.TB, admin *client.Client, id string, since time.Time) *client.Session {
	tb.Helper()
	var s *client.Session
	testutil.Eventually(tb, 30*time.Second, func() bool {
		var err error
		s, err = admin.GetSession(context.Background(), id)
		if err != nil {
			var ae *client.APIError
			if errors.As(err, &ae) {
				tb.Fatalf("get session: %v", err)
			}
			return false
		}
		return s.Status == "connected" && s.ConnectedAt != nil && !s.ConnectedAt.Before(since)
	}, "session %s not connected since %v", id, since)
	return s
}
