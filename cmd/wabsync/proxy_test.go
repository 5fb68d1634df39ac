package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// countingListener is a TCP listener on 127.0.0.1 that counts the
// connections it accepts and answers each with answer (then closes it).
type countingListener struct {
	ln       net.Listener
	accepted atomic.Int64
}

func mustCountingListener(t *testing.T, answer string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_, _ = c.Write([]byte(answer))
			}()
		}
	}()
	return cl
}

func (cl *countingListener) port() string {
	_, p, _ := net.SplitHostPort(cl.ln.Addr().String())
	return p
}

// A session's proxy may not point to the server's own networks: create and
// PATCH refuse loopback, private, link-local and metadata addresses with 422
// naming config.proxy, without dialling them (the listener standing at the
// loopback address never sees a connection).
func TestProxyPrivateAddressRefused(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.AllowPrivateURLs = false })
	target := mustCountingListener(t, "HTTP/1.1 200 Connection established\r\n\r\n")
	p := target.port()
	refused := map[string]string{
		"Loopback":       "http://127.0.0.1:" + p,
		"LoopbackV6":     "socks5://[::1]:" + p,
		"Localhost":      "http://localhost:" + p,
		"MappedLoopback": "http://[::ffff:127.0.0.1]:" + p,
		"Private":        "http://10.0.0.1:3128",
		"PrivateAuth":    "socks5://user:pw@192.168.1.10:1080",
		"Metadata":       "http://169.254.169.254",
		"Unspecified":    "https://0.0.0.0:" + p,
		"CGNAT":          "http://100.64.0.1:3128",
	}
	s := ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": "proxied", "engine": "whatsmeow",
		"config": map[string]any{"proxy": "http://8.8.8.8:3128"}})
	if s.Status != 201 {
		t.Fatalf("a public proxy: %d %s", s.Status, s.Body)
	}
	var created struct {
		Data struct {
			Session struct{ ID string } `json:"session"`
		} `json:"data"`
	}
	s.JSON(t, &created)
	id := created.Data.Session.ID
	for name, proxy := range refused {
		t.Run(name, func(t *testing.T) {
			r := ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": "p", "engine": "whatsmeow",
				"config": map[string]any{"proxy": proxy}})
			if r.Status != 422 || r.Err(t).Code != "VALIDATION_ERROR" || r.Err(t).Details["config.proxy"] == "" {
				t.Errorf("create: %d %s", r.Status, r.Body)
			}
			r = ts.Do("PATCH", "/api/v1/sessions/"+id, testAdminToken, map[string]any{"config": map[string]any{"proxy": proxy}})
			if r.Status != 422 || r.Err(t).Details["config.proxy"] == "" {
				t.Errorf("patch: %d %s", r.Status, r.Body)
			}
		})
	}
	got, err := ts.Admin.GetSession(context.Background(), id)
	if err != nil || got.Config.Proxy == nil || *got.Config.Proxy != "http://8.8.8.8:3128" {
		t.Fatalf("the refused PATCHes changed the session: %+v %v", got, err)
	}
	if n := target.accepted.Load(); n != 0 {
		t.Fatalf("the loopback proxy was dialled %d times", n)
	}
}

// A proxy that got into a session's config anyway (stored before the check
// existed, or a name that resolved elsewhere when it was set) is refused
// again when it is dialled: the connection attempt fails, says why, and the
// address is never connected to.
func TestProxyPrivateAddressRefusedAtDial(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.AllowPrivateURLs = false })
	target := mustCountingListener(t, "HTTP/1.1 200 Connection established\r\n\r\n")
	r := ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": "p", "engine": "whatsmeow"})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var created struct {
		Data struct {
			Session struct{ ID string } `json:"session"`
		} `json:"data"`
	}
	r.JSON(t, &created)
	id := created.Data.Session.ID
	if _, err := ts.DB.ModifySession(context.Background(), id, func(_ *store.Tx, s *wabsync.Session) error {
		s.Config.Proxy = "http://127.0.0.1:" + target.port()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Admin.Connect(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	reason := waitReason(t, ts, id)
	t.Logf("status_reason: %s", reason)
	if !strings.Contains(reason, "not allowed") {
		t.Errorf("status_reason = %q, want it to say the proxy's address is not allowed", reason)
	}
	if _, err := ts.Admin.Disconnect(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if n := target.accepted.Load(); n != 0 {
		t.Fatalf("the loopback proxy was dialled %d times", n)
	}
}

// What answers at a proxy's address never reaches status_reason: a proxy
// (allowed on loopback here, as WABSYNC_ALLOW_PRIVATE_URLS=true allows)
// that refuses the tunnel with its own text leaves a reason in fixed words.
func TestProxyAnswerNotEchoed(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.LogLevel = "debug" }) // private URLs allowed
	const secret = "SECRET-BANNER-a8f3"
	target := mustCountingListener(t, "HTTP/1.1 403 "+secret+" internal-host.corp\r\nContent-Length: 0\r\n\r\n")
	r := ts.Do("POST", "/api/v1/sessions", testAdminToken, map[string]any{"name": "p", "engine": "whatsmeow",
		"config": map[string]any{"proxy": "http://127.0.0.1:" + target.port()}})
	if r.Status != 201 {
		t.Fatalf("a loopback proxy with private URLs allowed: %d %s", r.Status, r.Body)
	}
	var created struct {
		Data struct {
			Session struct{ ID string } `json:"session"`
		} `json:"data"`
	}
	r.JSON(t, &created)
	id := created.Data.Session.ID
	if _, err := ts.Admin.Connect(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	reason := waitReason(t, ts, id)
	t.Logf("status_reason: %s", reason)
	if _, err := ts.Admin.Disconnect(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if target.accepted.Load() == 0 {
		t.Fatal("the proxy was never dialled")
	}
	if strings.Contains(reason, "SECRET") || strings.Contains(reason, "403") || strings.Contains(reason, "corp") {
		t.Fatalf("status_reason carries the proxy's answer: %q", reason)
	}
	if !strings.Contains(reason, "proxy") {
		t.Errorf("status_reason = %q, want it to name the proxy", reason)
	}
	if strings.Contains(ts.logs.String(), secret) {
		t.Errorf("the log carries the proxy's answer")
	}
}

// waitReason waits until the session's connection attempt failed
// (reconnecting or failed) and returns its status_reason.
func waitReason(t *testing.T, ts *testServer, id string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := ts.Admin.GetSession(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status == "reconnecting" || s.Status == "failed" {
			return s.StatusReason
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed attempt; status %s: %s", s.Status, s.StatusReason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
