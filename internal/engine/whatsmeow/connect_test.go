package whatsmeow

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
)

// settledGoroutines waits until the number of goroutines is at most max.
func settledGoroutines(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= max {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still running (want ≤ %d):\n%s", n, max, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noGoroutinesOf waits until no goroutine's stack mentions any of frames.
func noGoroutinesOf(t *testing.T, frames ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var found []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, f := range frames {
				if strings.Contains(g, f) && !strings.Contains(g, "noGoroutinesOf") {
					found = append(found, g)
					break
				}
			}
		}
		if len(found) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines still running:\n%s", strings.Join(found, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refusingProxy returns a proxy address on 127.0.0.1 where nothing listens,
// so that a real whatsmeow client's dial fails without any traffic leaving
// this machine (tests never dial WhatsApp's servers).
func refusingProxy(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// silentProxy returns a proxy address on 127.0.0.1 that accepts
// connections and never answers.
func silentProxy(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c) // read the CONNECT, never answer
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// With no route to WhatsApp a real whatsmeow client must fail its dial, and
// Connect must say so quickly, with a CONNECT_FAILED error that is not
// permanent (the runtime retries), leaving nothing behind.
func TestConnectWithoutRouteToWhatsApp(t *testing.T) {
	for _, linked := range []bool{false, true} {
		name := "Unlinked"
		if linked {
			name = "Linked"
		}
		t.Run(name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			const timeout = 5 * time.Second
			rec := newRecorder()
			f, err := NewFactory(context.Background(), MustOpenSQLite(t), "sqlite3", testLogger(t), Options{ConnectTimeout: timeout, AllowPrivateProxy: true})
			if err != nil {
				t.Fatal(err)
			}
			o := wabsync.EngineOptions{SessionID: "ses_noroute", Name: "noroute", Handler: rec.handle,
				Config: wabsync.SessionConfig{Proxy: refusingProxy(t)}}
			if linked {
				mustLinkedDevice(t, f, ownDevice, "Alice")
				o.DeviceJID = ownDevice.String()
			}
			eng, err := f.NewEngine(o)
			if err != nil {
				t.Fatal(err)
			}
			for attempt := range 2 { // a retry behaves the same
				start := time.Now()
				err = eng.Connect(context.Background())
				took := time.Since(start)
				var ee *wabsync.EngineError
				if !errors.As(err, &ee) || ee.Code != CodeConnectFailed || ee.Permanent {
					t.Fatalf("attempt %d: Connect = %v, want a non-permanent CONNECT_FAILED EngineError", attempt, err)
				}
				if !strings.HasPrefix(ee.Message, "could not reach WhatsApp") {
					t.Errorf("message = %q", ee.Message)
				}
				if took > timeout+2*time.Second {
					t.Errorf("attempt %d took %s, timeout is %s", attempt, took, timeout)
				}
				t.Logf("attempt %d: %s after %s", attempt, ee.Message, took.Round(time.Millisecond))
			}
			if evs := rec.all(); len(evs) != 0 {
				t.Errorf("events after failed connects: %s", fmtEvents(evs))
			}
			// Nothing keeps running between attempts (no auto-reconnect).
			settledGoroutines(t, before+3)
			closed := make(chan error, 1)
			go func() { closed <- eng.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			settledGoroutines(t, before+2)
			noGoroutinesOf(t, "go.mau.fi/whatsmeow", "engine/whatsmeow.(*Engine)")
			if err := eng.Connect(context.Background()); err == nil {
				t.Fatal("Connect after Close succeeded")
			}
		})
	}
}

// A context the caller cancels ends the attempt at once, also while the
// network is silent.
func TestConnectHonoursContext(t *testing.T) {
	f, err := NewFactory(context.Background(), MustOpenSQLite(t), "sqlite3", testLogger(t), Options{ConnectTimeout: time.Minute, AllowPrivateProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := f.NewEngine(wabsync.EngineOptions{SessionID: "ses_ctx", Handler: newRecorder().handle,
		Config: wabsync.SessionConfig{Proxy: silentProxy(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = eng.Connect(ctx)
	var ee *wabsync.EngineError
	if !errors.As(err, &ee) || ee.Code != CodeConnectFailed {
		t.Fatalf("Connect = %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("took %s", took)
	}
}

// A network that swallows the connection (here a proxy that accepts and
// never answers) runs into the connect timeout; the attempt is cut there and
// the connection closed.
func TestConnectTimesOutOnSilentNetwork(t *testing.T) {
	proxy := silentProxy(t)
	const timeout = time.Second
	f, err := NewFactory(context.Background(), MustOpenSQLite(t), "sqlite3", testLogger(t), Options{ConnectTimeout: timeout, AllowPrivateProxy: true})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := f.NewEngine(wabsync.EngineOptions{SessionID: "ses_silent", Handler: newRecorder().handle,
		Config: wabsync.SessionConfig{Proxy: proxy}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = eng.Connect(context.Background())
	took := time.Since(start)
	var ee *wabsync.EngineError
	if !errors.As(err, &ee) || ee.Code != CodeConnectFailed || ee.Permanent {
		t.Fatalf("Connect = %v", err)
	}
	if !strings.Contains(ee.Message, "within 1s") {
		t.Errorf("message = %q", ee.Message)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("took %s with a timeout of %s", took, timeout)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing of whatsmeow's or ours is left. net/http keeps its own dial
	// through the proxy going in the background (detached from the request
	// since Go 1.23) until its one-minute CONNECT timeout: blocked on I/O,
	// bounded, not spinning.
	noGoroutinesOf(t, "go.mau.fi/whatsmeow", "engine/whatsmeow.(*Engine)")
}

func TestNewEngineValidates(t *testing.T) {
	f := MustFactory(t, Options{})
	tests := []struct {
		name string
		o    wabsync.EngineOptions
	}{
		{"NoHandler", wabsync.EngineOptions{SessionID: "s"}},
		{"BadDeviceJID", wabsync.EngineOptions{SessionID: "s", Handler: newRecorder().handle, DeviceJID: "123@g.us"}},
		{"BadProxy", wabsync.EngineOptions{SessionID: "s", Handler: newRecorder().handle, Config: wabsync.SessionConfig{Proxy: "ftp://x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.NewEngine(tt.o); err == nil {
				t.Fatal("NewEngine accepted it")
			}
		})
	}
	if _, err := f.NewEngine(wabsync.EngineOptions{SessionID: "s", Handler: newRecorder().handle,
		Config: wabsync.SessionConfig{Proxy: "socks5://user:pw@127.0.0.1:1080"}}); err != nil {
		t.Fatalf("socks5 proxy refused: %v", err)
	}
}
