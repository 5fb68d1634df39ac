package main

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/wabsync/wabsync/client"
)

// TestTextNULAndInvalidUTF8: text with a NUL character or bytes that are
// not UTF-8 is refused (400 for the body, a path, a query or a header; 422
// naming the JSON field) before any query, on SQLite as on PostgreSQL,
// which refuses such text with an error of its own.
func TestTextNULAndInvalidUTF8(t *testing.T) {
	ts := mustRunMain(t)
	a, _ := ts.linkedSession("a", client.SessionConfig{})
	hook := ts.Do("POST", "/api/v1/sessions/"+a.ID+"/webhooks", testAdminToken, `{"url":"http://127.0.0.1:9/hook"}`)
	if hook.Status != 201 {
		t.Fatalf("create webhook: %d %s", hook.Status, hook.Body)
	}
	var h struct {
		Data struct{ ID string } `json:"data"`
	}
	hook.JSON(t, &h)
	sess, msgs, hooks := "/api/v1/sessions/"+a.ID, "/api/v1/sessions/"+a.ID+"/messages", "/api/v1/sessions/"+a.ID+"/webhooks"
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("c1:" + s)) }

	for _, tc := range []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		field              string
	}{
		{"SessionNameNUL", "POST", "/api/v1/sessions", `{"name":"a\u0000b","engine":"sandbox"}`, nil, 422, "name"},
		{"SessionNameInvalidUTF8", "POST", "/api/v1/sessions", []byte("{\"name\":\"a\xffb\",\"engine\":\"sandbox\"}"), nil, 400, ""},
		{"SessionRenameNUL", "PATCH", sess, `{"name":"\u0000"}`, nil, 422, "name"},
		{"SessionMetadataNUL", "PATCH", sess, `{"metadata":{"k":["\u0000"]}}`, nil, 422, "metadata.k[0]"},
		{"WebhookDescriptionNUL", "POST", hooks, `{"url":"http://127.0.0.1:9/hook","description":"x\u0000"}`, nil, 422, "description"},
		{"WebhookDescriptionPatchNUL", "PATCH", hooks + "/" + h.Data.ID, `{"description":"x\u0000"}`, nil, 422, "description"},
		{"SessionIDNUL", "GET", "/api/v1/sessions/ses%00x", nil, nil, 400, "session"},
		{"SessionIDInvalidUTF8", "GET", "/api/v1/sessions/ses%FFx", nil, nil, 400, "session"},
		{"MessageIDNUL", "GET", msgs + "/msg%00x", nil, nil, 400, "id"},
		{"MessageIDInvalidUTF8", "DELETE", msgs + "/msg%C3x", nil, nil, 400, "id"},
		{"WebhookIDNUL", "GET", hooks + "/wh%00", nil, nil, 400, "id"},
		{"DeliveryIDInvalidUTF8", "POST", hooks + "/" + h.Data.ID + "/deliveries/d%FF/retry", nil, nil, 400, "delivery"},
		{"ReplyToNUL", "POST", msgs + "/text", `{"to":"+15550000004","text":"hi","reply_to":"m\u0000"}`, nil, 422, "reply_to"},
		{"CursorNUL", "GET", "/api/v1/sessions?cursor=" + cursor("\x00"), nil, nil, 400, "cursor"},
		{"CursorInvalidUTF8", "GET", msgs + "?cursor=" + cursor("\xff\xfe"), nil, nil, 400, "cursor"},
		{"QueryValueNUL", "GET", "/api/v1/sessions?status=%00", nil, nil, 400, "status"},
		{"IdempotencyKeyInvalidUTF8", "POST", msgs + "/text", `{"to":"+15550000004","text":"hi"}`, []string{"Idempotency-Key", "k\xff"}, 400, "Idempotency-Key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.Do(tc.method, tc.path, testAdminToken, tc.body, tc.headers...)
			if r.Status != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, r.Status, r.Body, tc.status)
			}
			if e := r.Err(t); tc.field != "" && e.Details[tc.field] == "" {
				t.Fatalf("details %v do not name %q", e.Details, tc.field)
			}
		})
	}
	t.Run("MultipartCaptionNUL", func(t *testing.T) {
		body := "--b\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n+15550000004\r\n" +
			"--b\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nx\x00y\r\n" +
			"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
		r := ts.Do("POST", msgs+"/file", testAdminToken, strings.NewReader(body), "Content-Type", "multipart/form-data; boundary=b")
		if r.Status != 422 || r.Err(t).Details["caption"] == "" {
			t.Fatalf("%d %s, want 422 naming caption", r.Status, r.Body)
		}
	})
}
