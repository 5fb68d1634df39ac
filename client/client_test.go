package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
)

const token = "WBT|0123456789abcdefghijABCDEFGHIJxyz"

var sessionJSON = `{"id":"ses_1","name":"Support","engine":"sandbox","status":"stopped","status_reason":"",
"phone":"","push_name":"","config":{"auto_link":true},"metadata":{},"created_at":"2026-11-25T10:00:00Z",
"updated_at":"2026-11-25T10:00:00Z","connected_at":null}`

var messageJSON = `{"id":"msg_1","session_id":"ses_1","direction":"out","chat":"14155550123@s.whatsapp.net",
"from":"+15550100001","to":"+14155550123","from_jid":"15550100001@s.whatsapp.net","to_jid":"14155550123@s.whatsapp.net",
"kind":"text","text":"hi","status":"queued","status_history":[{"status":"queued","at":"2026-11-25T10:00:00Z"}],
"wa_id":"3EB0","sequence":1,"created_at":"2026-11-25T10:00:00Z","updated_at":"2026-11-25T10:00:00Z"}`

func ok(w http.ResponseWriter, status int, data string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Request-Id", "req_1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"success":true,"message":"ok","data":%s}`, data)
}

func fail(w http.ResponseWriter, status int, code, msg string, details map[string]string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Request-Id", "req_2")
	w.WriteHeader(status)
	if details == nil {
		details = map[string]string{}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": true, "message": msg, "code": code, "details": details})
}

func mustClient(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	t.Run("ErrBadURL", func(t *testing.T) {
		if _, err := client.New("localhost:8080", token); err == nil {
			t.Fatal("want an error for a URL without scheme")
		}
	})
	t.Run("NoToken", func(t *testing.T) {
		c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" {
				t.Errorf("Authorization sent without a token")
			}
			ok(w, 200, `{"status":"ok"}`)
		})
		c2, _ := client.New(c.ClientInterface.(*client.RawClient).Server, "")
		if _, err := c2.GetHealthWithResponse(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateSession(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v1/sessions" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+token {
			t.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("Idempotency-Key"); got != "k1" {
			t.Errorf("Idempotency-Key = %q", got)
		}
		var req map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Fatal(err)
		}
		if req["name"] != "Support" || req["engine"] != "sandbox" {
			t.Errorf("body = %v", req)
		}
		ok(w, 201, `{"session":`+sessionJSON+`,"token":"`+token+`"}`)
	})
	engine := client.EngineSandbox
	got, err := c.CreateSession(context.Background(), client.CreateSessionRequest{
		Name: "Support", Engine: &engine, Config: &client.SessionConfig{AutoLink: new(true)},
	}, client.WithIdempotencyKey("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != token || got.Session.ID != "ses_1" || got.Session.Status != client.SessionStatusStopped {
		t.Errorf("got %+v", got)
	}
	if got.Session.ConnectedAt != nil {
		t.Errorf("connected_at = %v, want nil", got.Session.ConnectedAt)
	}
}

func TestAPIError(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/sessions/me/messages/text":
			fail(w, 422, "VALIDATION_ERROR", "The request has invalid fields.", map[string]string{"to": "must be a phone number"})
		case "/api/v1/sessions/nope":
			fail(w, 404, "NOT_FOUND", "Session not found.", nil)
		case "/api/v1/sessions/me":
			w.Header().Set("Retry-After", "7")
			fail(w, 429, "RATE_LIMITED", "Too many requests.", nil)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			io.WriteString(w, "<html>Bad gateway</html>")
		}
	})
	ctx := context.Background()

	_, err := c.SendText(ctx, "me", client.SendTextRequest{To: "x", Text: "hi"})
	e, isAPI := client.AsAPIError(fmt.Errorf("wrapped: %w", err))
	if !isAPI {
		t.Fatalf("err = %v, want an *APIError", err)
	}
	if e.StatusCode != 422 || e.Code != "VALIDATION_ERROR" || e.Details["to"] != "must be a phone number" || e.RequestID != "req_2" {
		t.Errorf("got %+v", e)
	}
	if !strings.Contains(e.Error(), "to: must be a phone number") || !strings.Contains(e.Error(), "req_2") {
		t.Errorf("Error() = %q", e.Error())
	}
	if !client.IsCode(err, client.ErrorCodeValidation) {
		t.Error("IsCode(VALIDATION_ERROR) = false")
	}

	_, err = c.GetSession(ctx, "nope")
	if !client.IsCode(err, client.ErrorCodeNotFound) {
		t.Errorf("err = %v, want NOT_FOUND", err)
	}
	_, err = c.GetSession(ctx, "me")
	if e, _ := client.AsAPIError(err); e == nil || e.RetryAfter != 7*time.Second {
		t.Errorf("err = %#v, want RetryAfter 7s", err)
	}
	_, err = c.GetMessage(ctx, "me", "x")
	if e, _ := client.AsAPIError(err); e == nil || e.StatusCode != 502 || e.Code != "" || !strings.Contains(e.Message, "Bad gateway") {
		t.Errorf("err = %#v, want a 502 APIError without code", err)
	}
	if _, ok := client.AsAPIError(errors.New("other")); ok {
		t.Error("AsAPIError(plain error) = true")
	}
}

func TestCheckResponse(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		fail(w, 409, "SESSION_NOT_CONNECTED", "The session is not connected.", nil)
	})
	r, err := c.CheckContactsWithResponse(context.Background(), "me", nil, client.ContactsCheckRequest{Phones: []string{"+1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.CheckResponse(r.HTTPResponse, r.Body); !client.IsCode(err, client.ErrorCodeSessionNotConnected) {
		t.Errorf("CheckResponse = %v", err)
	}
	if r.JSON409 == nil || r.JSON409.Code != client.ErrorCodeSessionNotConnected {
		t.Errorf("JSON409 = %+v", r.JSON409)
	}
}

func TestUnexpectedSuccess(t *testing.T) {
	// A 200 where the contract says 201 is reported, not decoded as nothing.
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) { ok(w, 200, messageJSON) })
	_, err := c.SendText(context.Background(), "me", client.SendTextRequest{To: "+1", Text: "hi"})
	if err == nil || !strings.Contains(err.Error(), "unexpected response 200") {
		t.Errorf("err = %v", err)
	}
}

func TestSendAndGetMessage(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /api/v1/sessions/me/messages/text":
			b, _ := io.ReadAll(r.Body)
			if !bytes.Contains(b, []byte(`"queue_if_offline":false`)) {
				t.Errorf("body = %s", b)
			}
			ok(w, 201, messageJSON)
		case "GET /api/v1/sessions/me/messages/msg_1":
			ok(w, 200, messageJSON)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	})
	ctx := context.Background()
	m, err := c.SendText(ctx, "me", client.SendTextRequest{To: "+14155550123", Text: "hi", QueueIfOffline: new(false)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != client.MessageStatusQueued || len(m.StatusHistory) != 1 || m.WAID != "3EB0" {
		t.Errorf("got %+v", m)
	}
	if m, err = c.GetMessage(ctx, "me", "msg_1"); err != nil || m.ID != "msg_1" {
		t.Fatalf("GetMessage = %+v, %v", m, err)
	}
}

func TestConnect(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v1/sessions/ses_1/connect" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		ok(w, 200, strings.Replace(sessionJSON, `"stopped"`, `"starting"`, 1))
	})
	s, err := c.Connect(context.Background(), "ses_1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != client.SessionStatusStarting {
		t.Errorf("status = %s", s.Status)
	}
}

func TestStreamEvents(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") != "41" {
			t.Errorf("after = %q", r.URL.Query().Get("after"))
		}
		if r.Header.Get("Accept") != "text/event-stream" {
			t.Errorf("Accept = %q", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-Id", "req_3")
		io.WriteString(w, ": keep-alive\n\n")
		io.WriteString(w, "id: 42\nevent: message.received\ndata: {\"id\":\"evt_42\",\"type\":\"message.received\",\"session_id\":\"ses_1\",\"sequence\":42,\"created_at\":\"2026-11-25T10:00:00Z\",\"data\":"+strings.ReplaceAll(messageJSON, "\n", "")+"}\n\n")
		io.WriteString(w, ": keep-alive\r\n\r\n")
		io.WriteString(w, "id: 43\r\nevent: session.status\r\ndata: {\"id\":\"evt_43\",\"type\":\"session.status\",\"session_id\":\"ses_1\",\"sequence\":43,\r\n")
		io.WriteString(w, "data: \"created_at\":\"2026-11-25T10:00:00Z\",\"data\":{\"status\":\"connected\",\"previous\":\"starting\",\"reason\":\"\"}}\r\n\r\n")
		io.WriteString(w, "id: 44\nevent: incomplete\ndata: {}") // cut off: dropped
	})
	var got []*client.Event
	after := int64(41)
	err := c.StreamEvents(context.Background(), "me", &client.StreamSessionEventsParams{After: &after}, func(ev *client.Event) error {
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2", len(got))
	}
	var m client.Message
	if err := got[0].DecodeData(&m); err != nil || m.ID != "msg_1" || got[0].Sequence != 42 {
		t.Errorf("event 0: %+v, message %+v, %v", got[0], m, err)
	}
	var st client.SessionStatusData
	if err := got[1].DecodeData(&st); err != nil || st.Status != client.SessionStatusConnected || got[1].Type != client.EventTypeSessionStatus {
		t.Errorf("event 1: %+v, data %+v, %v", got[1], st, err)
	}

	t.Run("StopByCallback", func(t *testing.T) {
		stop := errors.New("stop")
		err := c.StreamEvents(context.Background(), "me", &client.StreamSessionEventsParams{After: &after}, func(*client.Event) error { return stop })
		if !errors.Is(err, stop) {
			t.Errorf("err = %v, want the callback's", err)
		}
	})
	t.Run("ErrorResponse", func(t *testing.T) {
		c := mustClient(t, func(w http.ResponseWriter, r *http.Request) { fail(w, 401, "UNAUTHORIZED", "No token.", nil) })
		err := c.StreamEvents(context.Background(), "me", nil, func(*client.Event) error { return nil })
		if !client.IsCode(err, client.ErrorCodeUnauthorized) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestUploadFile(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt != "multipart/form-data" {
			t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
		}
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			t.Fatal(err)
		}
		if r.FormValue("to") != "+14155550123" || r.FormValue("kind") != "document" || r.FormValue("queue_if_offline") != "false" {
			t.Errorf("form = %v", r.MultipartForm.Value)
		}
		f, h, err := r.FormFile("file")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		if !bytes.Equal(b, payload) || h.Filename != "data.txt" || h.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("file: %d bytes, name %q, type %q", len(b), h.Filename, h.Header.Get("Content-Type"))
		}
		ok(w, 201, messageJSON)
	})
	m, err := c.UploadFile(context.Background(), "me", client.Upload{
		To: "+14155550123", Filename: "data.txt", MimeType: "text/plain", Kind: client.MediaKindDocument,
		QueueIfOffline: new(false),
	}, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "msg_1" {
		t.Errorf("got %+v", m)
	}
}

func TestDownloadMedia(t *testing.T) {
	c := mustClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/sessions/me/messages/msg_1/media":
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Content-Disposition", `attachment; filename="cat.png"`)
			io.WriteString(w, "PNGDATA")
		case "/api/v1/media/med_1":
			if r.Header.Get("Authorization") != "" {
				t.Error("signed link sent the token")
			}
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, "PNGDATA")
		case "/api/v1/sessions/me/qr":
			if r.Header.Get("Accept") != "image/png" {
				t.Errorf("Accept = %q", r.Header.Get("Accept"))
			}
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, "\x89PNG")
		default:
			fail(w, 404, "NOT_FOUND", "Message not found.", nil)
		}
	})
	ctx := context.Background()
	d, err := c.DownloadMedia(ctx, "me", "msg_1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(d.Body)
	d.Body.Close()
	if string(b) != "PNGDATA" || d.ContentType != "image/png" || d.Filename != "cat.png" {
		t.Errorf("got %q %+v", b, d)
	}
	if _, err := c.DownloadMedia(ctx, "me", "msg_2"); !client.IsCode(err, client.ErrorCodeNotFound) {
		t.Errorf("err = %v", err)
	}
	d, err = c.DownloadURL(ctx, "/api/v1/media/med_1?expires=1&sig=x")
	if err != nil {
		t.Fatal(err)
	}
	d.Body.Close()
	png, err := c.QRCodePNG(ctx, "me")
	if err != nil || string(png) != "\x89PNG" {
		t.Errorf("QRCodePNG = %q, %v", png, err)
	}
}
