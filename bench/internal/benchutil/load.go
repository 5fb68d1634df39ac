package benchutil

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is what a load run measured.
type Result struct {
	OK, Errors int64
	Elapsed    time.Duration
	Latencies  []time.Duration // of successful requests
	FirstErr   error
}

// PerSecond is successful requests per second.
func (r Result) PerSecond() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// Percentile returns the p-th percentile (0–100) of the latencies.
func (r Result) Percentile(p float64) time.Duration { return Percentile(r.Latencies, p) }

// String is a one-line summary.
func (r Result) String() string {
	s := fmt.Sprintf("%d ok, %d errors in %.2fs = %.0f/s; latency p50 %s p99 %s max %s",
		r.OK, r.Errors, r.Elapsed.Seconds(), r.PerSecond(),
		Ms(r.Percentile(50)), Ms(r.Percentile(99)), Ms(r.Percentile(100)))
	if r.FirstErr != nil {
		s += fmt.Sprintf(" (first error: %v)", r.FirstErr)
	}
	return s
}

// Ms formats a duration in milliseconds with two decimals.
func Ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// Percentile returns the p-th percentile (0–100) of ds (sorted in place).
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

// ClosedLoop runs fn from workers goroutines back to back for d (after a
// warm-up of warm, not counted). fn returns nil for a success.
func ClosedLoop(workers int, warm, d time.Duration, fn func(worker int) error) Result {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		mu        sync.Mutex
		res       Result
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var ok, bad int64
			var first error
			for !stop.Load() {
				t0 := time.Now()
				err := fn(w)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					bad++
					if first == nil {
						first = err
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			res.OK += ok
			res.Errors += bad
			res.Latencies = append(res.Latencies, lat...)
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		}()
	}
	time.Sleep(warm)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	res.Elapsed = time.Since(start)
	stop.Store(true)
	wg.Wait()
	return res
}

// OpenLoop starts fn at a fixed rate (per second) for d, each call in its
// own goroutine, and times every call from its scheduled start, so that a
// stall of the server or the generator shows up as latency.
func OpenLoop(rate float64, d time.Duration, fn func(i int) error) Result {
	return OpenLoopWarm(rate, 0, d, fn)
}

// OpenLoopWarm is OpenLoop preceded by warm at the same rate: the calls of
// the warm-up (the first WarmCalls(rate, warm), numbered from 0 like the
// rest) are made but neither timed nor counted, as the closed loop's
// warm-up, so that the result is the steady state and not the first
// connections and cold caches. The rate does not change between the two.
func OpenLoopWarm(rate float64, warm, d time.Duration, fn func(i int) error) Result {
	var (
		mu  sync.Mutex
		res Result
		wg  sync.WaitGroup
	)
	interval := time.Duration(float64(time.Second) / rate)
	skip := WarmCalls(rate, warm)
	n := skip + int(d.Seconds()*rate)
	start := time.Now()
	var measured time.Time
	for i := range n {
		sched := start.Add(time.Duration(i) * interval)
		if w := time.Until(sched); w > 0 {
			time.Sleep(w)
		}
		if i == skip {
			measured = sched
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(i)
			l := time.Since(sched)
			if i < skip {
				return
			}
			mu.Lock()
			if err != nil {
				res.Errors++
				if res.FirstErr == nil {
					res.FirstErr = err
				}
			} else {
				res.OK++
				res.Latencies = append(res.Latencies, l)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if measured.IsZero() {
		measured = start
	}
	res.Elapsed = time.Since(measured)
	return res
}

// WarmCalls is how many calls OpenLoopWarm makes in its warm-up.
func WarmCalls(rate float64, warm time.Duration) int { return int(warm.Seconds() * rate) }

// bareEnv names the variable that makes a benchmark program serve the bare
// baseline instead of running (see MaybeServeBare).
const bareEnv = "WABSYNC_BENCH_BARE_ADDR"

// BareHandler is the baseline: plain net/http, reading (and for a body,
// decoding) the request and answering a small JSON envelope, with none of
// wabsync's layers.
func BareHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bare", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "message": "Session", "data": map[string]any{"id": "ses_0123456789abcdef", "name": "bench", "status": "connected"}})
	})
	mux.HandleFunc("POST /bare", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&v); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "message": "Message queued", "data": map[string]any{"id": "msg_0123456789abcdef", "to": v["to"], "status": "queued"}})
	})
	return mux
}

// MaybeServeBare serves the bare baseline and never returns when this
// process was started by StartBare; call it first thing in main.
func MaybeServeBare() {
	addr := os.Getenv(bareEnv)
	if addr == "" {
		return
	}
	srv := &http.Server{Addr: addr, Handler: BareHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	fmt.Fprintln(os.Stderr, srv.ListenAndServe())
	os.Exit(1)
}

// Bare is the baseline server running as a child process (this program,
// started again), so that it is a separate process like the real server.
type Bare struct {
	URL string
	cmd *exec.Cmd
}

// StartBare starts the baseline in a child process and waits until it answers.
func StartBare() (*Bare, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := FreeAddr()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), bareEnv+"="+addr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &Bare{URL: "http://" + addr + "/bare", cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(b.URL)
		if err == nil {
			resp.Body.Close()
			return b, nil
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("bare baseline not answering: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends the baseline process.
func (b *Bare) Stop() {
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

// Header prints the machine context every benchmark result is recorded with.
func Header(name string) {
	host, _ := os.Hostname()
	fmt.Printf("# %s  %s  host %s  cpus %d  load average %s\n", name, time.Now().UTC().Format(time.RFC3339), host, numCPU(), LoadAvg())
}

func numCPU() int { return runtime.NumCPU() }

var (
	exitMu    sync.Mutex
	exitFuncs []func()
)

// OnExit registers f to run (last registered first) when the program ends
// through Exit or Check, to stop child processes and drop databases.
func OnExit(f func()) {
	exitMu.Lock()
	exitFuncs = append(exitFuncs, f)
	exitMu.Unlock()
}

// Exit runs the OnExit functions and ends the program.
func Exit(code int) {
	exitMu.Lock()
	fs := exitFuncs
	exitFuncs = nil
	exitMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	os.Exit(code)
}

// Check ends the program (after the OnExit functions) on an error.
func Check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		Exit(1)
	}
}

// Ctx is a background context for the benchmark programs.
var Ctx = context.Background()
