// Command sessions measures sandbox sessions on the real server (issue 3):
//
//   - created per second: POST /api/v1/sessions from -conc clients, on a
//     fresh server (the sessions are not started);
//
//   - created and connected per second: create with auto_link, connect, until
//     every one is connected;
//
//   - resident memory per connected idle sandbox session at each count of
//     -counts (VmRSS of the server process, and the Go heap in use from
//     /metrics, each minus the server's own after start);
//
//   - restart: SIGTERM with every session connected, start again on the same
//     data, time until every session is connected again.
//
//     go run ./bench/sessions -counts 1000,10000
//     go run ./bench/sessions -create 0 -counts 10000 -restarts 3   # restart only
package main

import (
	"context"
	"flag"
	"fmt"
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
	conc     = flag.Int("conc", 32, "concurrent clients")
	create   = flag.Int("create", 5000, "sessions for the create-only rate (0: skip that step)")
	restarts = flag.Int("restarts", 1, "how many times to restart with every session connected")
	counts   = flag.String("counts", "1000,10000", "connected idle sessions at which to take memory, ascending")
	settle   = flag.Duration("settle", 5*time.Second, "wait after connecting before reading memory")
	dbURL    = flag.String("database-url", "", "WABSYNC_DATABASE_URL (default: SQLite in a temp dir); 'postgres' creates a fresh database")
)

func main() {
	flag.Parse()
	benchutil.Header("sessions")
	tmp, err := os.MkdirTemp("", "wabsync-bench-")
	benchutil.Check(err)
	benchutil.OnExit(func() { os.RemoveAll(tmp) })
	bin, err := benchutil.BuildServer(tmp)
	benchutil.Check(err)
	c := benchutil.NewClient(*conc)

	env := []string{"WABSYNC_RATE_LIMIT=1000000000", "WABSYNC_NODE_CAPACITY=1000000"}
	newDB := func(name string) []string {
		switch *dbURL {
		case "":
			return env
		case "postgres":
			u, drop, err := benchutil.CreateDatabase(name)
			benchutil.Check(err)
			benchutil.OnExit(drop)
			return append(env, "WABSYNC_DATABASE_URL="+u)
		}
		return append(env, "WABSYNC_DATABASE_URL="+*dbURL)
	}

	// 1. Create only, on a fresh server.
	if *create > 0 {
		srv := benchutil.NewServer(bin, filepath.Join(tmp, "create"), newDB("wabsync_bench_create")...)
		benchutil.Check(srv.Start())
		t0 := time.Now()
		n, errs := parallel(*create, *conc, func(i int) error {
			_, err := c.CreateSession(benchutil.Ctx, srv.URL, "s"+strconv.Itoa(i), map[string]any{"auto_link": true})
			return err
		})
		el := time.Since(t0)
		fmt.Printf("RESULT sessions create-only: %d created (%d errors) in %.2fs = %.0f sessions/s (target >= 1000), %d clients; load average %s\n",
			n, errs, el.Seconds(), float64(n)/el.Seconds(), *conc, benchutil.LoadAvg())
		srv.Stop()
	}

	// 2. Create and connect up to each count; memory at each.
	dataDir := filepath.Join(tmp, "data")
	srvEnv := newDB("wabsync_bench_sessions")
	srv := benchutil.NewServer(bin, dataDir, srvEnv...)
	benchutil.Check(srv.Start())
	benchutil.OnExit(srv.Stop)
	time.Sleep(*settle)
	baseRSS, baseHeap, baseG := memory(c, srv)
	fmt.Printf("baseline after start: RSS %.1f MiB, heap in use %.1f MiB, goroutines %.0f\n", mib(baseRSS), mib(baseHeap), baseG)

	total := 0
	for _, s := range strings.Split(*counts, ",") {
		target, err := strconv.Atoi(strings.TrimSpace(s))
		benchutil.Check(err)
		add := target - total
		t0 := time.Now()
		var createdAt atomic.Int64
		n, errs := parallel(add, *conc, func(i int) error {
			sess, err := c.CreateSession(benchutil.Ctx, srv.URL, "c"+strconv.Itoa(total+i), map[string]any{"auto_link": true})
			if err != nil {
				return err
			}
			createdAt.Store(int64(time.Since(t0)))
			return c.Connect(benchutil.Ctx, srv.URL, sess.ID)
		})
		if errs > 0 {
			fmt.Printf("%d of %d create+connect calls failed\n", errs, add)
		}
		connected := waitCount(c, srv.URL, target, 3*time.Minute)
		el := time.Since(t0)
		fmt.Printf("RESULT sessions create+connect %d -> %d: %d calls ok in %.2fs, all %d connected after %.2fs = %.0f sessions/s created+connected; load average %s\n",
			total, target, n, time.Duration(createdAt.Load()).Seconds(), connected, el.Seconds(), float64(add)/el.Seconds(), benchutil.LoadAvg())
		total = target
		time.Sleep(*settle)
		rss, heap, g := memory(c, srv)
		fmt.Printf("RESULT sessions memory at %d connected idle: RSS %.1f MiB (+%.1f MiB = %.1f KiB/session), heap in use %.1f MiB (+%.1f KiB/session), goroutines %.0f (%.1f/session); target <= 20 KiB/session\n",
			total, mib(rss), mib(rss-baseRSS), float64(rss-baseRSS)/1024/float64(total), mib(heap), float64(heap-baseHeap)/1024/float64(total), g, (g-baseG)/float64(total))
	}

	// 3. Restart with every session connected.
	for i := 0; i < *restarts; i++ {
		t0 := time.Now()
		srv.Stop()
		stopped := time.Since(t0)
		srv = benchutil.NewServer(bin, dataDir, srvEnv...)
		t1 := time.Now()
		benchutil.Check(srv.Start())
		benchutil.OnExit(srv.Stop)
		healthy := time.Since(t1)
		connected := waitCount(c, srv.URL, total, 3*time.Minute)
		back := time.Since(t1)
		fmt.Printf("RESULT sessions restart with %d connected: SIGTERM took %.2fs; new process healthy after %.2fs; %d connected again %.2fs after start (target <= 10s); load average %s\n",
			total, stopped.Seconds(), healthy.Seconds(), connected, back.Seconds(), benchutil.LoadAvg())
		time.Sleep(*settle)
	}
	rss, heap, g := memory(c, srv)
	fmt.Printf("after restart: RSS %.1f MiB, heap in use %.1f MiB, goroutines %.0f\n", mib(rss), mib(heap), g)
	benchutil.Exit(0)
}

// parallel runs fn(0..n-1) from conc goroutines; it returns successes and failures.
func parallel(n, conc int, fn func(i int) error) (ok, bad int) {
	var next, okN, badN atomic.Int64
	var first sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					badN.Add(1)
					first.Do(func() { fmt.Println("first error:", err) })
					continue
				}
				okN.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(okN.Load()), int(badN.Load())
}

// waitCount polls until want sessions are connected (or timeout) and
// returns the last count.
func waitCount(c *benchutil.Client, url string, want int, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	n := 0
	for ctx.Err() == nil {
		var err error
		n, err = c.CountSessions(ctx, url, "connected")
		if err == nil && n >= want {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("only %d of %d connected after %v\n", n, want, timeout)
	return n
}

func memory(c *benchutil.Client, srv *benchutil.Server) (rss, heap int64, goroutines float64) {
	r, err := benchutil.RSS(srv.PID())
	benchutil.Check(err)
	h, err := benchutil.Metric(&http.Client{Timeout: 30 * time.Second}, srv.URL, "go_memstats_heap_inuse_bytes")
	benchutil.Check(err)
	g, _ := benchutil.Metric(c.HC, srv.URL, "go_goroutines")
	return r, int64(h), g
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
