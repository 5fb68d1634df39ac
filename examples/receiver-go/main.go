// Command receiver-go is a minimal WabSync webhook receiver: it verifies
// each delivery's signature with the stock Standard Webhooks Go library,
// ignores events it has already handled (by webhook-id), and answers 2xx
// quickly.
//
//	WABSYNC_WEBHOOK_SECRET=whsec_… go run ./examples/receiver-go -addr :8000
//
// Then create a webhook whose url is http://<this host>:8000/webhooks/wabsync
// and use the secret its creation returned.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// event is the body of every delivery.
type event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	SessionID *string         `json:"session_id"`
	Sequence  int64           `json:"sequence"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

func main() {
	addr := flag.String("addr", ":8000", "address to listen on")
	flag.Parse()
	secret := os.Getenv("WABSYNC_WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("set WABSYNC_WEBHOOK_SECRET to the webhook's secret (whsec_…)")
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		log.Fatalf("secret: %v", err)
	}
	// seen holds the ids of handled events. Deliveries are at least once:
	// a retry after a lost answer brings the same webhook-id again. A real
	// receiver keeps this in its database, in the transaction that handles
	// the event.
	var mu sync.Mutex
	seen := map[string]bool{}

	http.HandleFunc("POST /webhooks/wabsync", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		// Verify checks the signature over the raw body and that
		// webhook-timestamp is within five minutes of now.
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		var ev event
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		dup := seen[ev.ID]
		seen[ev.ID] = true
		mu.Unlock()
		if dup {
			w.WriteHeader(http.StatusNoContent) // already handled: acknowledge again
			return
		}
		session := "-"
		if ev.SessionID != nil {
			session = *ev.SessionID
		}
		log.Printf("%s session=%s sequence=%d id=%s data=%s", ev.Type, session, ev.Sequence, ev.ID, ev.Data)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
