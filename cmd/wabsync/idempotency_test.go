package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
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

// TestIdempotencyRecordsPruned: the server deletes Idempotency-Key records
// past their 24 hours by itself, and a session's records with the session.
func TestIdempotencyRecordsPruned(t *testing.T) {
	ts := mustRunHooked(t, testConfig(t), func(m *Main) { m.pruneEvery = 20 * time.Millisecond })
	a, _ := ts.linkedSession("a", client.SessionConfig{})
	b, _ := ts.linkedSession("b", client.SessionConfig{})
	for _, id := range []string{a.ID, b.ID} {
		for i := range 3 {
			r := ts.Do("POST", "/api/v1/sessions/"+id+"/messages/text", testAdminToken,
				`{"to":"+15550000004","text":"hi"}`, "Idempotency-Key", fmt.Sprintf("k-%d", i))
			if r.Status != 201 {
				t.Fatalf("send: %d %s", r.Status, r.Body)
			}
		}
	}
	db := ts.DB.SQL()
	count := func(scope string) int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM idempotency_keys WHERE scope = $1`, scope).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count("send:"+a.ID) != 3 || count("send:"+b.ID) != 3 {
		t.Fatalf("records: a %d, b %d; want 3 each", count("send:"+a.ID), count("send:"+b.ID))
	}

	t.Run("WithTheSession", func(t *testing.T) {
		if r := ts.Do("DELETE", "/api/v1/sessions/"+b.ID, testAdminToken, nil); r.Status != 200 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if n := count("send:" + b.ID); n != 0 {
			t.Fatalf("%d records of the deleted session left", n)
		}
	})
	t.Run("After24Hours", func(t *testing.T) {
		// Two records age past the 24 hours; the third stays.
		old := time.Now().Add(-25 * time.Hour).UnixMicro()
		if _, err := db.Exec(`UPDATE idempotency_keys SET created_at = $1 WHERE scope = $2 AND key IN ('k-0', 'k-1')`, old, "send:"+a.ID); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return count("send:"+a.ID) == 1 },
			"expired records are not pruned (%d left)", count("send:"+a.ID))
	})
}
