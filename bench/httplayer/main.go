// Command httplayer measures the cost of wabsync's HTTP layer (issue 2):
// requests per second of a cheap authenticated route — GET
// /api/v1/sessions/me with a session token: authentication, rate limit, one
// primary-key read, the success envelope — against a bare net/http handler
// answering a similar small JSON body, with the same closed-loop client
// (keep-alive, -conns connections) in the same run. The two targets are
// measured alternately, -rounds times, so that a change of load on the
// machine touches both.
//
//	go run ./bench/httplayer -conns 32 -d 10s -rounds 3
//	go run ./bench/httplayer -redis redis://127.0.0.1:6379/0
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/wabsync/wabsync/bench/internal/benchutil"
)

func main() {
	benchutil.MaybeServeBare()
	conns := flag.Int("conns", 32, "concurrent keep-alive connections (closed loop)")
	d := flag.Duration("d", 10*time.Second, "measured duration of each run")
	warm := flag.Duration("warm", 2*time.Second, "warm-up before each run")
	rounds := flag.Int("rounds", 3, "alternating rounds of bare and wabsync")
	redis := flag.String("redis", "", "WABSYNC_REDIS_URL for the server (shared rate limits); empty: in-memory limiter")
	dbURL := flag.String("database-url", "", "WABSYNC_DATABASE_URL (default: SQLite in a temp dir)")
	health := flag.Bool("health", true, "also measure the public GET /api/v1/health (IP rate limit + envelope, no auth)")
	flag.Parse()

	benchutil.Header("httplayer")
	tmp, err := os.MkdirTemp("", "wabsync-bench-")
	benchutil.Check(err)
	benchutil.OnExit(func() { os.RemoveAll(tmp) })
	bin, err := benchutil.BuildServer(tmp)
	benchutil.Check(err)

	env := []string{"WABSYNC_RATE_LIMIT=1000000000"}
	if *redis != "" {
		env = append(env, "WABSYNC_REDIS_URL="+*redis)
	}
	if *dbURL != "" {
		env = append(env, "WABSYNC_DATABASE_URL="+*dbURL)
	}
	srv := benchutil.NewServer(bin, filepath.Join(tmp, "data"), env...)
	benchutil.Check(srv.Start())
	benchutil.OnExit(srv.Stop)
	bare, err := benchutil.StartBare()
	benchutil.Check(err)
	benchutil.OnExit(bare.Stop)

	c := benchutil.NewClient(*conns)
	sess, err := c.CreateSession(benchutil.Ctx, srv.URL, "bench", nil)
	benchutil.Check(err)
	fmt.Printf("server: %s; limiter: %s; rate limit 1e9/min (counting, never refusing); client: %d connections, closed loop, %v per run after %v warm-up\n",
		srv.URL, limiterName(*redis), *conns, *d, *warm)

	get := func(url, token string) func(int) error {
		return func(int) error {
			req, _ := http.NewRequest("GET", url, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := c.HC.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			if token != "" && resp.Header.Get("X-RateLimit-Remaining") == "" {
				return fmt.Errorf("no X-RateLimit-Remaining: the rate limiter did not run")
			}
			return nil
		}
	}
	bareFn := get(bare.URL, "")
	authFn := get(srv.URL+"/api/v1/sessions/me", sess.Token)
	healthFn := get(srv.URL+"/api/v1/health", "")

	var sumBare, sumAuth, sumHealth float64
	for r := 1; r <= *rounds; r++ {
		rb := benchutil.ClosedLoop(*conns, *warm, *d, bareFn)
		ra := benchutil.ClosedLoop(*conns, *warm, *d, authFn)
		fmt.Printf("round %d  bare net/http GET /bare            : %s\n", r, rb)
		fmt.Printf("round %d  wabsync GET /api/v1/sessions/me     : %s\n", r, ra)
		fmt.Printf("round %d  ratio %.3f  (load average %s)\n", r, ra.PerSecond()/rb.PerSecond(), benchutil.LoadAvg())
		sumBare += rb.PerSecond()
		sumAuth += ra.PerSecond()
		if *health {
			rh := benchutil.ClosedLoop(*conns, *warm, *d, healthFn)
			fmt.Printf("round %d  wabsync GET /api/v1/health (public): %s  ratio %.3f\n", r, rh, rh.PerSecond()/rb.PerSecond())
			sumHealth += rh.PerSecond()
		}
	}
	n := float64(*rounds)
	fmt.Printf("RESULT httplayer limiter=%s conns=%d: bare %.0f req/s, sessions/me %.0f req/s, ratio %.3f (target >= 0.8)",
		limiterName(*redis), *conns, sumBare/n, sumAuth/n, sumAuth/sumBare)
	if *health {
		fmt.Printf("; health %.0f req/s, ratio %.3f", sumHealth/n, sumHealth/sumBare)
	}
	fmt.Printf("; load average %s\n", benchutil.LoadAvg())
	benchutil.Exit(0)
}

func limiterName(redis string) string {
	if redis == "" {
		return "memory"
	}
	return "redis"
}
