package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// TestTwoNodesOneDatabase runs two servers in one process on one PostgreSQL
// database: any node answers any request — forwarded to the owner where the
// engine is needed — events stream from either node, and a rotated token stops
// working on both at once.
func TestTwoNodesOneDatabase(t *testing.T) {
	testutil.RequirePostgres(t)
	cfg := testConfig(t)
	cfg.LeaseTTL = 5 * time.Second
	cfgA, cfgB := cfg, cfg
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	cfgB.DataDir = t.TempDir()
	a := mustRunConfig(t, cfgA)
	b := mustRunConfig(t, cfgB)
	ctx := context.Background()

	// A session connected through A runs on A.
	s, tok := a.sandboxSession("x", client.SessionConfig{})
	if _, err := a.Admin.Connect(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	a.waitStatus(s.ID, "scan_qr", 10*time.Second)

	t.Run("EventsStreamFromAnyNode", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		got := make(chan string, 10)
		go b.Client(tok).StreamEvents(sctx, "me", nil, func(ev *client.Event) error {
			var d client.SessionStatusData
			if string(ev.Type) == "session.status" && ev.DecodeData(&d) == nil {
				got <- string(d.Status)
			}
			return nil
		})
		time.Sleep(300 * time.Millisecond) // the stream is open
		// QR through B (read from the database), scan through B (forwarded to A).
		qr, err := b.Client(tok).QRCode(ctx, "me")
		if err != nil {
			t.Fatal(err)
		}
		r := b.Do("POST", "/api/v1/sandbox/scan", testAdminToken, map[string]string{"qr": qr.QR})
		if r.Status != 200 {
			t.Fatalf("scan through the other node: %d %s", r.Status, r.Body)
		}
		for {
			select {
			case st := <-got:
				if st == "connected" {
					return
				}
			case <-sctx.Done():
				t.Fatal("node B's stream did not show the session connecting on node A")
			}
		}
	})

	t.Run("EngineRequestsForwarded", func(t *testing.T) {
		// contacts/check needs the engine, which runs on A.
		resp, err := b.Client(tok).CheckContactsWithResponse(ctx, "me", nil, client.CheckContactsJSONRequestBody{Phones: []string{"+15550000001", "+14155550123"}})
		if err != nil || resp.JSON200 == nil {
			t.Fatalf("check through B: %v %s", err, resp.Body)
		}
		items := resp.JSON200.Data.Items
		if len(items) != 2 || items[0].OnWhatsapp || !items[1].OnWhatsapp {
			t.Fatalf("check: %+v", items)
		}
		nodes := listNodes(t, b.Admin)
		for _, n := range nodes {
			if n.ID == "node-a" && n.Sessions != 1 {
				t.Fatalf("node-a runs %d sessions: %+v", n.Sessions, nodes)
			}
		}
	})

	t.Run("RotatedTokenFailsOnEveryNode", func(t *testing.T) {
		if _, err := b.Client(tok).GetSession(ctx, "me"); err != nil { // cached on B
			t.Fatal(err)
		}
		newTok, err := a.Client(tok).RotateToken(ctx, "me")
		if err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 3*time.Second, func() bool {
			_, err := b.Client(tok).GetSession(ctx, "me")
			return client.IsCode(err, "UNAUTHORIZED")
		}, "the old token still works on node B")
		if got, err := b.Client(newTok).GetSession(ctx, "me"); err != nil || !strings.HasPrefix(got.ID, "ses_") {
			t.Fatalf("new token on B: %v", err)
		}
	})
}
