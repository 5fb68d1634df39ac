package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
	"github.com/wabsync/wabsync/internal/webhook"
)

// fastReceiver answers 204 at once and counts what it got.
func fastReceiver(tb testing.TB, onEvent func(body []byte)) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if onEvent != nil {
			onEvent(body)
		}
		n.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

// receiverCeiling measures what the receiver alone takes: POSTs of body
// from 64 goroutines over one shared transport, for d.
func receiverCeiling(tb testing.TB, url string, body []byte, d time.Duration) float64 {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer c.CloseIdleConnections()
	var n atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := c.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					tb.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// mustEvents stores n events of session sid, 500 per transaction.
func mustEvents(tb testing.TB, db *store.DB, sid string, n int) {
	for done := 0; done < n; {
		k := min(500, n-done)
		err := db.Update(context.Background(), func(tx *store.Tx) error {
			for i := 0; i < k; i++ {
				if _, err := tx.AddEvent(&sid, wabsync.EventMessageReceived, map[string]any{"i": i, "text": "hello from the benchmark"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		done += k
	}
}

// BenchmarkDeliveries measures deliveries per second from a backlog to a
// fast local receiver, next to what the receiver takes on its own.
//
//	go test -run '^$' -bench Deliveries -benchtime 20000x ./internal/webhook/
func BenchmarkDeliveries(b *testing.B) {
	for _, endpoints := range []int{1, 4} {
		b.Run("Endpoints="+strconv.Itoa(endpoints), func(b *testing.B) {
			db := testutil.MustOpenDB(b)
			srv, got := fastReceiver(b, nil)
			sid := MustSession(b, db)
			for i := 0; i < endpoints; i++ {
				MustWebhook(b, db, &sid, srv.URL)
			}
			events := (b.N + endpoints - 1) / endpoints
			mustEvents(b, db, sid, events)
			want := int64(events * endpoints)
			ev, _ := db.ListEvents(context.Background(), sid, 0, 1)
			body, _ := json.Marshal(ev[0])
			ceiling := receiverCeiling(b, srv.URL, body, time.Second)
			got.Store(0)

			d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true})
			b.ResetTimer()
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- d.Run(context.Background()) }()
			for got.Load() < want {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			d.Close()
			<-done
			b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(ceiling, "receiver-req/s")
		})
	}
}

// BenchmarkEventLatency measures the time from an event's creation to its
// arrival at a fast local receiver, with events stored at 1,000 a second
// for 5 seconds (one transaction each).
//
//	go test -run '^$' -bench EventLatency -benchtime 1x ./internal/webhook/
func BenchmarkEventLatency(b *testing.B) {
	const rate, seconds = 1000, 5
	for i := 0; i < b.N; i++ {
		db := testutil.MustOpenDB(b)
		var mu sync.Mutex
		var lat []time.Duration
		srv, got := fastReceiver(b, func(body []byte) {
			var ev wabsync.Event
			if json.Unmarshal(body, &ev) == nil {
				l := time.Since(ev.CreatedAt)
				mu.Lock()
				lat = append(lat, l)
				mu.Unlock()
			}
		})
		sid := MustSession(b, db)
		MustWebhook(b, db, &sid, srv.URL)
		d := webhook.NewDispatcher(db, webhook.Options{AllowPrivate: true})
		db.OnDeliveries = d.Notify
		done := make(chan error, 1)
		go func() { done <- d.Run(context.Background()) }()

		b.ResetTimer()
		tick := time.NewTicker(time.Second / rate)
		var wg sync.WaitGroup
		for n := 0; n < rate*seconds; n++ {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				MustEvent(b, db, sid, wabsync.EventMessageReceived)
			}()
		}
		tick.Stop()
		wg.Wait()
		for got.Load() < rate*seconds {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		d.Close()
		<-done
		slices.Sort(lat)
		p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(p(0.50), "p50-ms")
		b.ReportMetric(p(0.99), "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	}
}
