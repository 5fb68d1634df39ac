package main

import (
	"testing"

	"github.com/wabsync/wabsync/client"
)

// TestIdempotencySameJSONDifferentBytes: a retry that encodes the same JSON
// with other spacing or key order is the same request.
func TestIdempotencySameJSONDifferentBytes(t *testing.T) {
	ts := mustRunMain(t)
	a, _ := ts.linkedSession("a", client.SessionConfig{})
	path := "/api/v1/sessions/" + a.ID + "/messages/text"
	first := ts.Do("POST", path, testAdminToken, `{"to":"+15550000004","text":"hi"}`, "Idempotency-Key", "k-1")
	again := ts.Do("POST", path, testAdminToken, "{ \"text\": \"hi\",\n  \"to\": \"+15550000004\" }", "Idempotency-Key", "k-1")
	if first.Status != 201 || again.Status != 201 || string(first.Body) != string(again.Body) {
		t.Fatalf("first %d %s\nagain %d %s", first.Status, first.Body, again.Status, again.Body)
	}
	other := ts.Do("POST", path, testAdminToken, `{"to":"+15550000004","text":"bye"}`, "Idempotency-Key", "k-1")
	if other.Status != 409 || other.Err(t).Code != "IDEMPOTENCY_CONFLICT" {
		t.Fatalf("different body: %d %s", other.Status, other.Body)
	}
}
