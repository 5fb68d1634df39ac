package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
)

// A base64 file in JSON is read as it streams: the fields may come before
// or after it, JSON escapes inside it are understood, the fields before it
// are checked before it arrives, and the idempotency hash covers the fields
// and the file, not the text's layout.
func TestBase64UploadStreams(t *testing.T) {
	ts := mustRunMain(t)
	a := ts.linkedPeer("a", client.SessionConfig{})
	path := "/api/v1/sessions/me/messages/file"
	const to = "+14155550123"
	pdf := append([]byte("%PDF-1.7\n"), randomBytes(5000)...)
	enc := base64.StdEncoding.EncodeToString(pdf)
	accepted := func(t *testing.T, r rawResponse, data []byte) {
		t.Helper()
		var env struct {
			Data client.Message `json:"data"`
		}
		if r.Status != 201 {
			t.Fatalf("want 201, got %d %s", r.Status, r.Body)
		}
		r.JSON(t, &env)
		if env.Data.Media == nil || env.Data.Media.Sha256 != sha(data) {
			t.Fatalf("stored %+v, want sha %s", env.Data.Media, sha(data))
		}
	}
	failed := func(t *testing.T, r rawResponse, status int, code, field string) {
		t.Helper()
		e := r.Err(t)
		if r.Status != status || e.Code != code || (field != "" && e.Details[field] == "") {
			t.Fatalf("want %d %s naming %q, got %d %s", status, code, field, r.Status, r.Body)
		}
	}
	t.Run("FieldsAfterTheFile", func(t *testing.T) {
		body := fmt.Sprintf(`{"base64": %q, "to": %q, "caption": "after", "filename": "a.pdf"}`, enc, to)
		accepted(t, ts.Do("POST", path, a.Token, body), pdf)
	})
	t.Run("EscapesAndLineBreaks", func(t *testing.T) {
		odd := append([]byte("%PDF-1.7\n"), 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xbf)
		text := strings.ReplaceAll(base64.StdEncoding.EncodeToString(odd), "/", `\/`)
		body := fmt.Sprintf(`{"to": %q, "base64": "%s\r\n%s"}`, to, text[:8], text[8:])
		accepted(t, ts.Do("POST", path, a.Token, body), odd)
	})
	t.Run("DataURLURLSafe", func(t *testing.T) {
		body := fmt.Sprintf(`{"to": %q, "base64": "data:application/pdf;base64,%s"}`, to, base64.RawURLEncoding.EncodeToString(pdf))
		accepted(t, ts.Do("POST", path, a.Token, body), pdf)
	})
	t.Run("TwoFiles", func(t *testing.T) {
		body := fmt.Sprintf(`{"to": %q, "base64": %q, "base64": %q}`, to, enc, enc)
		failed(t, ts.Do("POST", path, a.Token, body), 422, "VALIDATION_ERROR", "base64")
	})
	t.Run("URLAfterTheFile", func(t *testing.T) {
		body := fmt.Sprintf(`{"to": %q, "base64": %q, "url": "http://127.0.0.1:1/x.pdf"}`, to, enc)
		failed(t, ts.Do("POST", path, a.Token, body), 422, "VALIDATION_ERROR", "url")
	})
	t.Run("NotAString", func(t *testing.T) {
		failed(t, ts.Do("POST", path, a.Token, fmt.Sprintf(`{"to": %q, "base64": 12}`, to)), 422, "VALIDATION_ERROR", "base64")
	})
	t.Run("UnknownFieldAfterTheFile", func(t *testing.T) {
		body := fmt.Sprintf(`{"to": %q, "base64": %q, "colour": "red"}`, to, enc)
		failed(t, ts.Do("POST", path, a.Token, body), 422, "VALIDATION_ERROR", "colour")
	})
	for name, body := range map[string]string{
		"Unterminated":   fmt.Sprintf(`{"to": %q, "base64": "%s`, to, enc),
		"TrailingData":   fmt.Sprintf(`{"to": %q, "base64": %q} {}`, to, enc),
		"MissingComma":   fmt.Sprintf(`{"base64": %q "to": %q}`, enc, to),
		"ControlInValue": fmt.Sprintf(`{"to": %q, "base64": "%s%s"}`, to, enc[:8], "\x01"),
		"NotAnObject":    `["base64"]`,
	} {
		t.Run(name, func(t *testing.T) {
			failed(t, ts.Do("POST", path, a.Token, body), 400, "BAD_REQUEST", "")
		})
	}
	t.Run("FieldsTooLarge", func(t *testing.T) {
		body := fmt.Sprintf(`{"to": %q, "base64": %q, "caption": %q}`, to, enc, strings.Repeat("x", 2<<20))
		failed(t, ts.Do("POST", path, a.Token, body), 413, "PAYLOAD_TOO_LARGE", "")
	})
	t.Run("IdempotencyIgnoresLayout", func(t *testing.T) {
		first := fmt.Sprintf(`{"to": %q, "caption": "c", "base64": %q}`, to, enc)
		second := fmt.Sprintf("{\n  \"base64\": \"%s\",\n  \"caption\": \"c\", \"to\": %q\n}", wrapLines(enc, 76), to)
		r1 := ts.Do("POST", path, a.Token, first, "Idempotency-Key", "layout-1")
		r2 := ts.Do("POST", path, a.Token, second, "Idempotency-Key", "layout-1")
		if r1.Status != 201 || r2.Status != 201 || !bytes.Equal(r1.Body, r2.Body) || r2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%d %s\n%d %s", r1.Status, r1.Body, r2.Status, r2.Body)
		}
		other := fmt.Sprintf(`{"to": %q, "caption": "c", "base64": %q}`, to, base64.StdEncoding.EncodeToString(append(pdf, 'x')))
		failed(t, ts.Do("POST", path, a.Token, other, "Idempotency-Key", "layout-1"), 409, "IDEMPOTENCY_CONFLICT", "")
	})
	t.Run("CheckedBeforeTheFileArrives", func(t *testing.T) {
		// The body never ends: the answer comes from the fields before the
		// file (a server that read the body first would wait until the
		// context ends). The client goes on sending, so that the server can
		// drop what it sends before it answers (net/http does).
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() {
			if _, err := io.WriteString(pw, `{"to": "someone", "base64": "`); err != nil {
				return
			}
			chunk := strings.Repeat("A", 4096)
			for range 1024 {
				if _, err := io.WriteString(pw, chunk); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) }) // the client waits for its body
		resp := rawDo(t, ctx, ts, a.Token, pr)
		if resp.StatusCode != 422 {
			t.Fatalf("want 422 naming to, got %d", resp.StatusCode)
		}
	})
	if fs := ts.blobFiles(); len(fs) != 2 {
		t.Errorf("files %v, want the two files accepted (pdf, odd)", fs)
	}
}

// rawDo posts a JSON file request whose body is r (no length: chunked).
func rawDo(tb testing.TB, ctx context.Context, ts *testServer, token string, r io.Reader) *http.Response {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL()+"/api/v1/sessions/me/messages/file", r)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func wrapLines(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + `\n`)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// Large JSON uploads read at once are bounded, per node and per token:
// past the node's bound the server answers 503, past a token's 429, both
// with Retry-After, and it takes uploads again once they end.
func TestLargeJSONUploadsBounded(t *testing.T) {
	ts := mustRunMain(t)
	var tokens []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		tokens = append(tokens, ts.linkedPeer(name, client.SessionConfig{}).Token)
	}
	const to = "+14155550123"
	pdf := base64.StdEncoding.EncodeToString(append([]byte("%PDF-1.7\n"), randomBytes(30000)...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Uploads (of no stated length) whose file is still arriving hold their
	// slots; what they send first is more than the client buffers.
	type answer struct {
		status     int
		retryAfter string
	}
	answers := make(chan answer, 32)
	var writers []*io.PipeWriter
	start := func(token string) {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL()+"/api/v1/sessions/me/messages/file", pr)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{}
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After")}
		}()
		go func() { _, _ = io.WriteString(pw, fmt.Sprintf(`{"to": %q, "base64": "%s`, to, pdf[:20000])) }()
	}
	refused := func(status int, what string) {
		t.Helper()
		select {
		case a := <-answers:
			if a.status != status || a.retryAfter != "1" {
				t.Fatalf("%s got %d (Retry-After %q), want %d with Retry-After 1", what, a.status, a.retryAfter, status)
			}
		case <-ctx.Done():
			t.Fatalf("%s was not refused", what)
		}
	}
	// A fifth upload of one token is refused at once, with 429.
	for range 5 {
		start(tokens[0])
	}
	refused(429, "a token's fifth upload")
	// Four tokens more fill the node's 16 slots; the rest is refused, 503.
	for _, tok := range tokens[1:] {
		for range 4 {
			start(tok)
		}
	}
	for range 4 {
		refused(503, "an upload past the node's bound")
	}
	for _, pw := range writers {
		go func() { _, _ = io.WriteString(pw, pdf[20000:]+`"}`); pw.Close() }()
	}
	for range 16 {
		if a := <-answers; a.status != 201 {
			t.Errorf("an upload within the bound ended with %d, want 201", a.status)
		}
	}
	if r := rawDo(t, ctx, ts, tokens[0], io.MultiReader(strings.NewReader(fmt.Sprintf(`{"to": %q, "base64": %q}`, to, pdf)))); r.StatusCode != 201 {
		t.Fatalf("after the uploads ended: %d, want 201", r.StatusCode)
	}
}
