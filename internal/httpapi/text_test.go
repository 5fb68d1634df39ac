package httpapi

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/wabsync/wabsync"
)

// TestDecodeStrictText: the JSON decoder refuses a body that is not UTF-8
// (400) and names every decoded string, however nested, with a NUL (422).
func TestDecodeStrictText(t *testing.T) {
	type inner struct {
		Tags []string `json:"tags"`
	}
	type contact struct {
		Name   string   `json:"name"`
		Phones []string `json:"phones"`
	}
	type request struct {
		Name     string         `json:"name"`
		Meta     map[string]any `json:"meta"`
		Inner    *inner         `json:"inner"`
		Data     []byte         `json:"data"`
		Contacts []contact      `json:"contacts"`
	}
	for _, tc := range []struct {
		name, body, code, field string
	}{
		{"Clean", `{"name":"a\u00e9","meta":{"k":["v"]},"inner":{"tags":["x"]},"data":"AAA="}`, "", ""},
		{"InvalidUTF8", "{\"name\":\"\xc3\"}", wabsync.EBadRequest, ""},
		{"NULField", `{"name":"a\u0000"}`, wabsync.EValidation, "name"},
		{"NULInMap", `{"meta":{"k":{"n":"\u0000"}}}`, wabsync.EValidation, "meta.k.n"},
		{"NULMapKey", `{"meta":{"\u0000":1}}`, wabsync.EValidation, "meta"},
		{"NULNested", `{"inner":{"tags":["ok","\u0000"]}}`, wabsync.EValidation, "inner.tags[1]"},
		{"NULInStructOfSlice", `{"contacts":[{"name":"ok","phones":["1"]},{"name":"a\u0000"}]}`, wabsync.EValidation, "contacts[1].name"},
		{"EscapedBackslashIsNoNUL", `{"name":"\\u0000"}`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req request
			err := decodeStrict([]byte(tc.body), &req)
			if got := wabsync.ErrorCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if tc.field != "" {
				var e *wabsync.Error
				if !asError(err, &e) || e.Details[tc.field] == "" {
					t.Fatalf("details %v do not name %q", e.Details, tc.field)
				}
			}
		})
	}
}

func asError(err error, e **wabsync.Error) bool {
	v, ok := err.(*wabsync.Error)
	*e = v
	return ok
}

// TestCheckRequestText: path values of the route's pattern, query values and
// the stored headers are checked in one place.
func TestCheckRequestText(t *testing.T) {
	if got := wildcards("POST /api/v1/sessions/{session}/webhooks/{id}/deliveries/{delivery}/retry"); !slices.Equal(got, []string{"session", "id", "delivery"}) {
		t.Fatalf("wildcards: %v", got)
	}
	pattern := "GET /api/v1/sessions/{session}"
	for _, tc := range []struct {
		name, target, header, field string
	}{
		{"Clean", "/api/v1/sessions/ses_1?cursor=abc", "k-1", ""},
		{"PathNUL", "/api/v1/sessions/a%00b", "", "session"},
		{"QueryInvalid", "/api/v1/sessions/ses_1?status=%ff", "", "status"},
		{"HeaderInvalid", "/api/v1/sessions/ses_1", "k\xff", "Idempotency-Key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.target, nil)
			r.SetPathValue("session", r.URL.Path[len("/api/v1/sessions/"):])
			if tc.header != "" {
				r.Header.Set("Idempotency-Key", tc.header)
			}
			err := checkRequestText(r, pattern)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *wabsync.Error
			if !asError(err, &e) || e.Code != wabsync.EBadRequest || e.Details[tc.field] == "" {
				t.Fatalf("%v, want BAD_REQUEST naming %q", err, tc.field)
			}
		})
	}
}
