// Command messages measures the durable send pipeline on the real server
// (issue 4), each figure next to the bare net/http baseline in the same run:
//
//   - accepted text messages per second (201s) from -conns closed-loop
//     clients, session C (default pacing) to session B;
//
//   - p99 accept latency at an offered -rate msg/s, open loop (every request
//     timed from its scheduled start, after -warm at the same rate that is
//     not timed), session A to B;
//
//   - end-to-end latency from POST to `delivered` (seen on A's event stream)
//     at that same offered load, A configured with send_rate/send_burst 1000;
//
//   - resident memory before and after -store messages are stored.
//
//     go run ./bench/messages                       # SQLite (WAL; each 201 fsynced, as with synchronous=FULL)
//     go run ./bench/messages -database-url postgres # a fresh PostgreSQL database, dropped after
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync/bench/internal/benchutil"
)

var (
	conns  = flag.Int("conns", 64, "concurrent clients for the closed-loop throughput")
	dur    = flag.Duration("d", 10*time.Second, "measured duration of each closed-loop run")
	warm   = flag.Duration("warm", 2*time.Second, "warm-up before each closed-loop and open-loop run: requests made at the same load, not timed")
	rounds = flag.Int("rounds", 2, "alternating rounds of bare and wabsync")
	rate   = flag.Float64("rate", 1000, "offered load of the open-loop runs (msg/s)")
	openD  = flag.Duration("open-d", 10*time.Second, "duration of the open-loop runs")
	store  = flag.Int("store", 100000, "messages stored in all before the second memory sample")
	dbURL  = flag.String("database-url", "", "WABSYNC_DATABASE_URL (default: SQLite in a temp dir); 'postgres' creates a fresh database and drops it after")
)

func main() {
	benchutil.MaybeServeBare()
	flag.Parse()
	benchutil.Header("messages")
	tmp, err := os.MkdirTemp("", "wabsync-bench-")
	benchutil.Check(err)
	benchutil.OnExit(func() { os.RemoveAll(tmp) })
	bin, err := benchutil.BuildServer(tmp)
	benchutil.Check(err)

	env := []string{"WABSYNC_RATE_LIMIT=1000000000"}
	dbName := "sqlite"
	if *dbURL == "postgres" {
		u, drop, err := benchutil.CreateDatabase("wabsync_bench_messages")
		benchutil.Check(err)
		benchutil.OnExit(drop)
		env = append(env, "WABSYNC_DATABASE_URL="+u)
		dbName = "postgres"
	} else if *dbURL != "" {
		env = append(env, "WABSYNC_DATABASE_URL="+*dbURL)
		dbName = "postgres"
	}
	srv := benchutil.NewServer(bin, filepath.Join(tmp, "data"), env...)
	benchutil.Check(srv.Start())
	benchutil.OnExit(srv.Stop)
	bare, err := benchutil.StartBare()
	benchutil.Check(err)
	benchutil.OnExit(bare.Stop)

	c := benchutil.NewClient(*conns)
	ctx := benchutil.Ctx
	fast := map[string]any{"send_rate": 1000, "send_burst": 1000}
	a, err := c.LinkedSession(ctx, srv.URL, "bench-a", fast)
	benchutil.Check(err)
	b, err := c.LinkedSession(ctx, srv.URL, "bench-b", nil)
	benchutil.Check(err)
	cs, err := c.LinkedSession(ctx, srv.URL, "bench-c", nil)
	benchutil.Check(err)
	fmt.Printf("server %s on %s; A %s (send_rate 1000, burst 1000), B %s, C %s (default pacing)\n", srv.URL, dbName, a.Phone, b.Phone, cs.Phone)
	time.Sleep(time.Second)
	rss0, err := benchutil.RSS(srv.PID())
	benchutil.Check(err)

	var stored atomic.Int64
	post := func(url, token string, body []byte, count bool) func(int) error {
		return func(int) error {
			req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := c.HC.Do(req)
			if err != nil {
				return err
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				return fmt.Errorf("status %d: %.200s", resp.StatusCode, out)
			}
			if count {
				stored.Add(1)
			}
			return nil
		}
	}
	body, _ := json.Marshal(map[string]any{"to": b.Phone, "text": "hello from the benchmark, a message of a usual length"})
	bareFn := post(bare.URL, "", body, false)
	sendFn := post(srv.URL+"/api/v1/sessions/me/messages/text", cs.Token, body, true)

	// 1. Throughput, closed loop.
	var sumBare, sumSend float64
	for r := 1; r <= *rounds; r++ {
		rb := benchutil.ClosedLoop(*conns, *warm, *dur, bareFn)
		rs := benchutil.ClosedLoop(*conns, *warm, *dur, sendFn)
		fmt.Printf("round %d  bare net/http POST /bare (decode, 201)   : %s\n", r, rb)
		fmt.Printf("round %d  wabsync POST messages/text (durable 201): %s\n", r, rs)
		fmt.Printf("round %d  ratio %.3f (load average %s)\n", r, rs.PerSecond()/rb.PerSecond(), benchutil.LoadAvg())
		sumBare += rb.PerSecond()
		sumSend += rs.PerSecond()
	}
	target := 8000.0
	if dbName == "postgres" {
		target = 5000
	}
	n := float64(*rounds)
	fmt.Printf("RESULT messages %s accepted/s: %.0f (target >= %.0f), bare net/http %.0f req/s, %d connections; load average %s\n",
		dbName, sumSend/n, target, sumBare/n, *conns, benchutil.LoadAvg())

	// 2. Open loop at -rate: accept latency, and POST -> delivered.
	var (
		mu        sync.Mutex
		scheduled = map[string]time.Time{}
		delivered = map[string]time.Time{}
	)
	stopSSE := streamDelivered(srv.URL, a.Token, func(id string, at time.Time) {
		mu.Lock()
		delivered[id] = at
		mu.Unlock()
	})
	time.Sleep(500 * time.Millisecond)
	rbo := benchutil.OpenLoopWarm(*rate, *warm, *openD, bareFn)
	m0 := writerMetrics(c.HC, srv.URL)
	fmt.Printf("open loop %.0f/s bare net/http: %s\n", *rate, rbo)
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	skip := benchutil.WarmCalls(*rate, *warm)
	ro := benchutil.OpenLoopWarm(*rate, *warm, *openD, func(i int) error {
		sched := start.Add(time.Duration(i) * interval)
		bd, _ := json.Marshal(map[string]any{"to": b.Phone, "text": "open loop " + strconv.Itoa(i)})
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/sessions/me/messages/text", bytes.NewReader(bd))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+a.Token)
		resp, err := c.HC.Do(req)
		if err != nil {
			return err
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("status %d: %.200s", resp.StatusCode, out)
		}
		stored.Add(1)
		var m struct {
			Data struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			return err
		}
		if i >= skip { // the warm-up's messages are not timed
			mu.Lock()
			scheduled[m.Data.ID] = sched
			mu.Unlock()
		}
		return nil
	})
	fmt.Printf("open loop %.0f/s wabsync:       %s\n", *rate, ro)
	fmt.Printf("server side during it: %s\n", writerMetrics(c.HC, srv.URL).since(m0))
	// Wait for the deliveries (at most 60 s).
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := 0
		for id := range scheduled {
			if _, ok := delivered[id]; ok {
				done++
			}
		}
		total := len(scheduled)
		mu.Unlock()
		if done == total {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopSSE()
	seenMu.Lock()
	fmt.Printf("events streamed from A: %v\n", seenTypes)
	seenMu.Unlock()
	if missing := len(scheduled) - len(delivered); missing > 0 {
		for _, st := range []string{"queued", "sending", "sent", "delivered", "read", "failed"} {
			_, out, _ := c.Do(ctx, "GET", srv.URL+"/api/v1/sessions/me/messages?limit=100&status="+st, a.Token, nil)
			fmt.Printf("A's messages %s: %d+ (first page)\n", st, strings.Count(string(out), `"direction":`))
		}
	}
	mu.Lock()
	var e2e []time.Duration
	missing := 0
	for id, s := range scheduled {
		if d, ok := delivered[id]; ok {
			e2e = append(e2e, d.Sub(s))
		} else {
			missing++
		}
	}
	mu.Unlock()
	fmt.Printf("RESULT messages %s open loop %.0f msg/s for %v: accept p50 %s p99 %s max %s (target p99 <= 10ms; bare p99 %s); %d errors\n",
		dbName, *rate, *openD, benchutil.Ms(ro.Percentile(50)), benchutil.Ms(ro.Percentile(99)), benchutil.Ms(ro.Percentile(100)), benchutil.Ms(rbo.Percentile(99)), ro.Errors)
	fmt.Printf("RESULT messages %s end-to-end POST->delivered at %.0f msg/s: p50 %s p99 %s max %s over %d messages, %d not delivered within 60s (target p99 <= 100ms; %d events streamed); load average %s\n",
		dbName, *rate, benchutil.Ms(benchutil.Percentile(e2e, 50)), benchutil.Ms(benchutil.Percentile(e2e, 99)), benchutil.Ms(benchutil.Percentile(e2e, 100)), len(e2e), missing, seen.Load(), benchutil.LoadAvg())

	// 3. Memory with messages stored.
	rss1, _ := benchutil.RSS(srv.PID())
	if left := int64(*store) - stored.Load(); left > 0 {
		t0 := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= left {
					if err := sendFn(0); err != nil {
						fmt.Println("send:", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		fmt.Printf("stored %d more in %.1fs\n", left, time.Since(t0).Seconds())
	}
	time.Sleep(3 * time.Second)
	rss2, _ := benchutil.RSS(srv.PID())
	fmt.Printf("RESULT messages %s memory: RSS %.1f MiB after linking, %.1f MiB after the latency runs, %.1f MiB with %d messages stored (accepted in this run)\n",
		dbName, mib(rss0), mib(rss1), mib(rss2), stored.Load())
	benchutil.Exit(0)
}

// streamDelivered follows a session's event stream and calls fn with the id
// of every message.delivered event and when it arrived.
func streamDelivered(base, token string, fn func(id string, at time.Time)) (stop func()) {
	req, _ := http.NewRequest("GET", base+"/api/v1/sessions/me/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	hc := &http.Client{Transport: &http.Transport{}}
	resp, err := hc.Do(req)
	benchutil.Check(err)
	if resp.StatusCode != 200 {
		benchutil.Check(fmt.Errorf("events: %d", resp.StatusCode))
	}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		typ := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = line[len("event: "):]
				seen.Add(1)
				seenMu.Lock()
				seenTypes[typ]++
				seenMu.Unlock()
			case strings.HasPrefix(line, "data: ") && typ == "message.delivered":
				at := time.Now()
				var ev struct {
					Data struct {
						ID string `json:"id"`
					} `json:"data"`
				}
				if json.Unmarshal([]byte(line[len("data: "):]), &ev) == nil {
					fn(ev.Data.ID, at)
				}
			case line == "":
				typ = ""
			}
		}
	}()
	return func() { resp.Body.Close() }
}

// seen counts the events streamed, seenTypes by type.
var (
	seen      atomic.Int64
	seenMu    sync.Mutex
	seenTypes = map[string]int{}
)

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// writerStats are the server's store metrics (sums and counts).
type writerStats map[string]float64

var writerMetricNames = []string{"wabsync_db_write_batches_total", "wabsync_db_write_changes_total",
	"wabsync_db_write_wait_seconds_sum", "wabsync_db_write_wait_seconds_count",
	"wabsync_db_commit_seconds_sum", "wabsync_db_commit_seconds_count",
	"wabsync_db_sync_seconds_sum", "wabsync_db_sync_seconds_count",
	// The tails: how many took 5 ms or less (a series of the histograms).
	`wabsync_db_sync_seconds_bucket{le="0.005"}`, `wabsync_db_write_wait_seconds_bucket{le="0.005"}`}

func writerMetrics(hc *http.Client, base string) writerStats {
	out := writerStats{}
	for _, n := range writerMetricNames {
		v, err := benchutil.Metric(hc, base, n)
		if err == nil {
			out[n] = v
		}
	}
	return out
}

// since describes what happened between two samples.
func (b writerStats) since(a writerStats) string {
	d := func(n string) float64 { return b[n] - a[n] }
	mean := func(n string) string {
		if c := d(n + "_count"); c > 0 {
			return benchutil.Ms(time.Duration(d(n+"_sum") / c * float64(time.Second)))
		}
		return "-"
	}
	over5ms := func(n string) float64 { return d(n+"_count") - d(n+`_bucket{le="0.005"}`) }
	batches := d("wabsync_db_write_batches_total")
	return fmt.Sprintf("%.0f commits (%.1f changes each), %.0f fsyncs; mean wait for a batch %s, commit %s, fsync %s; over 5 ms: %.0f fsyncs, %.0f waits",
		batches, d("wabsync_db_write_changes_total")/max(batches, 1), d("wabsync_db_sync_seconds_count"),
		mean("wabsync_db_write_wait_seconds"), mean("wabsync_db_commit_seconds"), mean("wabsync_db_sync_seconds"),
		over5ms("wabsync_db_sync_seconds"), over5ms("wabsync_db_write_wait_seconds"))
}
