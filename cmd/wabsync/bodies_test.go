package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
)

// connGuard bounds each wait on a raw connection below: far longer than the
// server should take, far shorter than the read timeout the test configures
// where the server must not wait for it.
const connGuard = 20 * time.Second

// rawConn sends a request head and the first part of its body on a raw
// connection to ts, and leaves the rest of the body unsent.
func rawConn(t *testing.T, ts *testServer, method, path string, headers map[string]string, length int, part []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, path, ts.Addr(), length)
	for k, v := range headers {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v)
	}
	head.WriteString("\r\n")
	if _, err := conn.Write(append(head.Bytes(), part...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(connGuard))
	return conn, bufio.NewReader(conn)
}

// wantClosed reads what is left on the connection and fails unless the
// server closed it.
func wantClosed(t *testing.T, br *bufio.Reader, what string) {
	t.Helper()
	_, err := io.Copy(io.Discard, br)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the connection is still open after %v", what, connGuard)
		}
		// A reset is a close too.
	}
}

// TestRefusedRequestsDoNotWaitForTheirBody: a request refused before its
// handler (no token, a wrong token, the wrong token for an admin route, an
// unknown route, a public route) is answered at once, however slowly its
// body comes, and its connection closed. The read timeout is long here: the
// answer must not wait for it.
func TestRefusedRequestsDoNotWaitForTheirBody(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.ReadTimeout = 10 * time.Minute })
	_, tok := ts.sandboxSession("slow", client.SessionConfig{})
	json := map[string]string{"Content-Type": "application/json"}
	with := func(token string) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}
	}
	for _, c := range []struct {
		name, method, path string
		headers            map[string]string
		status             int
	}{
		{"NoToken", "POST", "/api/v1/sessions/me/messages/text", json, 401},
		{"WrongToken", "POST", "/api/v1/sessions/me/messages/text", with("WBT|not-a-token-of-this-server-0123456789"), 401},
		{"WrongTokenUpload", "POST", "/api/v1/sessions/me/messages/file", map[string]string{
			"Content-Type": "multipart/form-data; boundary=x", "Authorization": "Bearer WBT|not-a-token-of-this-server-0123456789"}, 401},
		{"SessionTokenOnAdminRoute", "POST", "/api/v1/sessions", with(tok), 403},
		{"UnknownRoute", "POST", "/api/v1/nowhere", json, 404},
		{"PublicRoute", "GET", "/api/v1/health", json, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, br := rawConn(t, ts, c.method, c.path, c.headers, 1000, []byte(`{"to": "`))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer while the body trickles: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			wantClosed(t, br, "after the answer")
		})
	}
}

// TestSlowBodiesTimeOut: an authenticated request whose body stalls loses
// its connection after the read timeout; an upload gets the read timeout as
// grace and must then keep the minimum rate, so a slow but steady upload
// that takes longer than the read timeout still gets through.
func TestSlowBodiesTimeOut(t *testing.T) {
	ts := mustRunMain(t, func(c *Config) { c.ReadTimeout, c.UploadMinRate = time.Second, 100 })
	a := ts.linkedPeer("a", client.SessionConfig{})
	b := ts.linkedPeer("b", client.SessionConfig{})
	auth := func(ct string) map[string]string {
		return map[string]string{"Content-Type": ct, "Authorization": "Bearer " + a.Token}
	}

	t.Run("StalledJSON", func(t *testing.T) {
		_, br := rawConn(t, ts, "POST", "/api/v1/sessions/me/messages/text", auth("application/json"), 1000, []byte(`{"to": "`))
		wantClosed(t, br, "a stalled body, past the read timeout")
	})
	t.Run("StalledUpload", func(t *testing.T) {
		_, br := rawConn(t, ts, "POST", "/api/v1/sessions/me/messages/file", auth("multipart/form-data; boundary=x"), 1<<20, []byte("--x\r\n"))
		wantClosed(t, br, "a stalled upload, past its grace")
	})
	t.Run("SteadyUpload", func(t *testing.T) {
		// 16 KB at about 8 KB/s: twice the read timeout, eighty times the
		// minimum rate.
		body, ct := multipartBody(t, map[string]string{"to": b.Phone}, "doc.pdf", append([]byte("%PDF-1.7\n"), randomBytes(16000)...))
		data, _ := io.ReadAll(body)
		conn, br := rawConn(t, ts, "POST", "/api/v1/sessions/me/messages/file", auth(ct), len(data), nil)
		for len(data) > 0 {
			n := min(400, len(data))
			if _, err := conn.Write(data[:n]); err != nil {
				t.Fatalf("the server stopped reading a steady upload: %v", err)
			}
			data = data[n:]
			time.Sleep(50 * time.Millisecond)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 201 {
			t.Fatalf("steady upload: %d %s", resp.StatusCode, out)
		}
	})
}
