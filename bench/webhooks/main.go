// Command webhooks measures webhook delivery through the real server
// (issue 5): events made by messages between two sandbox sessions (A sends
// to B at -rate msg/s, open loop; B's webhook gets message.received) reach a
// fast receiver in this process. Phases: -normal with the receiver up
// (event-to-delivery latency p50/p99), -outage with the receiver's listener
// closed (connection refused), then the receiver back: time until the
// backlog has drained and until new events arrive with normal latency.
//
// Deliveries per second from a backlog, next to the receiver's own ceiling,
// are measured in-process by internal/webhook's benchmarks:
//
//	go test -run '^$' -bench 'Deliveries|EventLatency' -benchtime 20000x ./internal/webhook/
//
//	go run ./bench/webhooks -rate 200 -normal 20s -outage 60s -after 90s
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/wabsync/wabsync/bench/internal/benchutil"
)

type arrival struct {
	created, got time.Time
}

func main() {
	rate := flag.Float64("rate", 200, "messages (= events at the webhook) per second")
	normal := flag.Duration("normal", 20*time.Second, "phase with the receiver up, before the outage")
	outage := flag.Duration("outage", 60*time.Second, "how long the receiver is down")
	after := flag.Duration("after", 60*time.Second, "phase after the receiver is back")
	dbURL := flag.String("database-url", "", "WABSYNC_DATABASE_URL (default: SQLite in a temp dir)")
	flag.Parse()
	benchutil.Header("webhooks")
	tmp, err := os.MkdirTemp("", "wabsync-bench-")
	benchutil.Check(err)
	benchutil.OnExit(func() { os.RemoveAll(tmp) })
	bin, err := benchutil.BuildServer(tmp)
	benchutil.Check(err)
	env := []string{"WABSYNC_RATE_LIMIT=1000000000", "WABSYNC_ALLOW_PRIVATE_URLS=true"}
	if *dbURL != "" {
		env = append(env, "WABSYNC_DATABASE_URL="+*dbURL)
	}
	srv := benchutil.NewServer(bin, filepath.Join(tmp, "data"), env...)
	benchutil.Check(srv.Start())
	benchutil.OnExit(srv.Stop)

	// The receiver: answers 204 at once, records the first arrival of each
	// event (by webhook-id) with the event's created_at.
	var (
		mu      sync.Mutex
		seen    = map[string]arrival{}
		arrived = map[int]bool{}
		dups    int
	)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		now := time.Now()
		var ev struct {
			CreatedAt time.Time `json:"created_at"`
			Data      struct {
				Text string `json:"text"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		var idx int
		_, _ = fmt.Sscanf(ev.Data.Text, "webhook bench %d", &idx)
		id := r.Header.Get("webhook-id")
		mu.Lock()
		if _, ok := seen[id]; ok {
			dups++
		} else {
			seen[id] = arrival{created: ev.CreatedAt, got: now}
			arrived[idx] = true
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	recvAddr := benchutil.FreeAddr()
	var recv *http.Server
	up := func() {
		var ln net.Listener
		var err error
		for range 100 { // the port may linger a moment after Close
			if ln, err = net.Listen("tcp", recvAddr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		benchutil.Check(err)
		recv = &http.Server{Handler: handler}
		go recv.Serve(ln)
	}
	up()

	c := benchutil.NewClient(64)
	ctx := benchutil.Ctx
	a, err := c.LinkedSession(ctx, srv.URL, "wh-a", map[string]any{"send_rate": 1000, "send_burst": 1000})
	benchutil.Check(err)
	b, err := c.LinkedSession(ctx, srv.URL, "wh-b", nil)
	benchutil.Check(err)
	code, out, err := c.Do(ctx, "POST", srv.URL+"/api/v1/sessions/"+b.ID+"/webhooks", benchutil.AdminToken,
		map[string]any{"url": "http://" + recvAddr + "/hook", "events": []string{"message.received"}})
	benchutil.Check(err)
	if code != 201 {
		benchutil.Check(fmt.Errorf("create webhook: %d %s", code, out))
	}
	fmt.Printf("server %s; A -> B at %.0f msg/s; B's webhook -> http://%s (message.received)\n", srv.URL, *rate, recvAddr)

	// The load runs throughout, in the background.
	total := *normal + *outage + *after
	body := func(i int) map[string]any {
		return map[string]any{"to": b.Phone, "text": "webhook bench " + strconv.Itoa(i)}
	}
	var (
		accMu    sync.Mutex
		accTimes = map[int]time.Time{}
	)
	// missing counts the messages accepted before t whose event has not
	// reached the receiver, of all accepted before t.
	missing := func(t time.Time) (n, of int) {
		accMu.Lock()
		defer accMu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		for i, at := range accTimes {
			if at.Before(t) {
				of++
				if !arrived[i] {
					n++
				}
			}
		}
		return n, of
	}
	allArrived := func(t time.Time) bool { n, _ := missing(t); return n == 0 }
	loadDone := make(chan benchutil.Result, 1)
	go func() {
		loadDone <- benchutil.OpenLoop(*rate, total, func(i int) error {
			code, out, err := c.Do(ctx, "POST", srv.URL+"/api/v1/sessions/me/messages/text", a.Token, body(i))
			if err != nil {
				return err
			}
			if code != 201 {
				return fmt.Errorf("%d %.200s", code, out)
			}
			accMu.Lock()
			accTimes[i] = time.Now()
			accMu.Unlock()
			return nil
		})
	}()
	start := time.Now()
	time.Sleep(*normal)
	downAt := time.Now()
	_ = recv.Close()
	fmt.Printf("receiver down at +%.1fs\n", downAt.Sub(start).Seconds())
	time.Sleep(*outage)
	upAt := time.Now()
	up()
	backlog, _ := missing(upAt)
	fmt.Printf("receiver up at +%.1fs; %d events of accepted messages waiting\n", upAt.Sub(start).Seconds(), backlog)

	// Watch every second after the receiver is back.
	var drained time.Duration = -1
	normalAt := time.Duration(-1)
	baseP99 := time.Duration(0)
	mu.Lock()
	var base []time.Duration
	for _, v := range seen {
		if v.created.Before(downAt) {
			base = append(base, v.got.Sub(v.created))
		}
	}
	mu.Unlock()
	fmt.Printf("before the outage: %d events, latency p50 %s p99 %s\n", len(base), benchutil.Ms(benchutil.Percentile(base, 50)), benchutil.Ms(benchutil.Percentile(base, 99)))
	baseP99 = benchutil.Percentile(base, 99)
	for time.Since(upAt) < *after {
		time.Sleep(time.Second)
		now := time.Now()
		mu.Lock()
		n := len(seen)
		var recent []time.Duration
		for _, v := range seen {
			if v.created.After(now.Add(-time.Second)) || v.got.After(now.Add(-time.Second)) && v.created.After(upAt) {
				recent = append(recent, v.got.Sub(v.created))
			}
		}
		mu.Unlock()
		p99 := benchutil.Percentile(recent, 99)
		fmt.Printf("+%4.0fs after up: %d events received in all; %d events made in the last second or since up and received in the last second, p99 %s\n", now.Sub(upAt).Seconds(), n, len(recent), benchutil.Ms(p99))
		if normalAt < 0 && len(recent) > 0 && p99 <= max(2*baseP99, 50*time.Millisecond) {
			normalAt = now.Sub(upAt)
		}
		// Drained: every message accepted before the receiver came back
		// has its event at the receiver.
		if drained < 0 && allArrived(upAt) {
			drained = now.Sub(upAt)
		}
		if drained >= 0 && normalAt >= 0 && now.Sub(upAt) > drained+5*time.Second {
			break
		}
	}
	left, of := missing(upAt)
	load := <-loadDone
	// Accepted per phase: whether the server kept accepting during the outage.
	accMu.Lock()
	var accNormal, accOutage, accAfter int
	for _, at := range accTimes {
		switch {
		case at.Before(downAt):
			accNormal++
		case at.Before(upAt):
			accOutage++
		default:
			accAfter++
		}
	}
	accMu.Unlock()
	mu.Lock()
	var lat []time.Duration
	for _, v := range seen {
		if v.created.After(upAt.Add(max(drained, 0))) {
			lat = append(lat, v.got.Sub(v.created))
		}
	}
	n := len(seen)
	mu.Unlock()
	fmt.Printf("load: %s\n", load)
	fmt.Printf("messages accepted: %d before the outage (%.0f/s), %d during it (%.0f/s), %d after (%.0f/s)\n",
		accNormal, float64(accNormal)/normal.Seconds(), accOutage, float64(accOutage)/outage.Seconds(),
		accAfter, float64(accAfter)/after.Seconds())
	since := func(d time.Duration) string {
		if d < 0 {
			return fmt.Sprintf("NOT within %v", *after)
		}
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	fmt.Printf("RESULT webhooks outage %v at %.0f events/s: %d events waiting when the receiver came back; time from receiver back to backlog drained: %s (%d of %d events of messages accepted before it still missing at the end); to p99 back to normal (<= max(2x before, 50ms)): %s (target <= 30s for both); before: p99 %s; after the drain: p50 %s p99 %s; %d events received, %d duplicates; load average %s\n",
		*outage, *rate, backlog, since(drained), left, of, since(normalAt), benchutil.Ms(baseP99), benchutil.Ms(benchutil.Percentile(lat, 50)), benchutil.Ms(benchutil.Percentile(lat, 99)), n, dups, benchutil.LoadAvg())
	benchutil.Exit(0)
}
