// Command nodes measures several wabsync processes sharing one PostgreSQL
// database (issue 7), for each node count in -nodes: a fresh database, that
// many servers on loopback ports (each its own WABSYNC_NODE_ID), -sessions
// sandbox sessions sending to each other, a global webhook for every event
// to a fast receiver in this process. The closed-loop load generator
// spreads its requests over the nodes (client w talks to node w mod N, as
// session w mod S). Reported: accepted messages/s, and deliveries/s at the
// receiver until the deliveries stop. All processes share this machine's
// cores with the load generator and PostgreSQL.
//
//	go run ./bench/nodes -nodes 1,2,3 -d 10s
package main

import (
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
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync/bench/internal/benchutil"
)

func main() {
	nodesF := flag.String("nodes", "1,2,3", "node counts to measure")
	sessions := flag.Int("sessions", 6, "sandbox sessions (each sends to the next)")
	conns := flag.Int("conns", 64, "concurrent clients")
	d := flag.Duration("d", 10*time.Second, "measured duration")
	warm := flag.Duration("warm", 2*time.Second, "warm-up")
	flag.Parse()
	benchutil.Header("nodes")
	tmp, err := os.MkdirTemp("", "wabsync-bench-")
	benchutil.Check(err)
	benchutil.OnExit(func() { os.RemoveAll(tmp) })
	bin, err := benchutil.BuildServer(tmp)
	benchutil.Check(err)

	var got atomic.Int64
	var last atomic.Int64
	recv := &http.Server{Addr: benchutil.FreeAddr(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		last.Store(time.Now().UnixNano())
		w.WriteHeader(http.StatusNoContent)
	})}
	go recv.ListenAndServe()

	for _, f := range strings.Split(*nodesF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		benchutil.Check(err)
		run(bin, tmp, n, *sessions, *conns, *warm, *d, recv.Addr, &got, &last)
	}
	benchutil.Exit(0)
}

func run(bin, tmp string, n, nsess, conns int, warm, d time.Duration, recvAddr string, got, last *atomic.Int64) {
	name := fmt.Sprintf("wabsync_bench_nodes%d", n)
	dbURL, drop, err := benchutil.CreateDatabase(name)
	benchutil.Check(err)
	defer drop()
	var srvs []*benchutil.Server
	for i := range n {
		s := benchutil.NewServer(bin, filepath.Join(tmp, name, strconv.Itoa(i)),
			"WABSYNC_DATABASE_URL="+dbURL, "WABSYNC_NODE_ID=bench-node-"+strconv.Itoa(i),
			"WABSYNC_RATE_LIMIT=1000000000", "WABSYNC_ALLOW_PRIVATE_URLS=true", "WABSYNC_LEASE_TTL=5s")
		benchutil.Check(s.Start())
		srvs = append(srvs, s)
	}
	defer func() {
		for _, s := range srvs {
			s.Stop()
		}
	}()
	c := benchutil.NewClient(conns)
	ctx := benchutil.Ctx
	code, out, err := c.Do(ctx, "POST", srvs[0].URL+"/api/v1/webhooks", benchutil.AdminToken,
		map[string]any{"url": "http://" + recvAddr + "/hook", "events": []string{"*"}})
	benchutil.Check(err)
	if code != 201 {
		benchutil.Check(fmt.Errorf("create webhook: %d %s", code, out))
	}
	var ss []*benchutil.Session
	for i := range nsess {
		s, err := c.LinkedSession(ctx, srvs[i%n].URL, "node-bench-"+strconv.Itoa(i), map[string]any{"send_rate": 1000, "send_burst": 1000})
		benchutil.Check(err)
		ss = append(ss, s)
	}
	time.Sleep(2 * time.Second) // let the leases spread
	bodies := make([][]byte, nsess)
	for i := range ss {
		bodies[i], _ = json.Marshal(map[string]any{"to": ss[(i+1)%nsess].Phone, "text": "hello from the nodes benchmark"})
	}
	got.Store(0)
	startAll := time.Now()
	res := benchutil.ClosedLoop(conns, warm, d, func(w int) error {
		s := w % nsess
		req, _ := http.NewRequest("POST", srvs[w%n].URL+"/api/v1/sessions/me/messages/text", bytes.NewReader(bodies[s]))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ss[s].Token)
		resp, err := c.HC.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	// Deliveries go on after the load: wait until none came for 3 s (at most 120 s).
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if time.Since(time.Unix(0, last.Load())) > 3*time.Second {
			break
		}
	}
	deliveries := got.Load()
	span := time.Unix(0, last.Load()).Sub(startAll)
	fmt.Printf("RESULT nodes=%d (PostgreSQL, all on this machine's 2 cores): accepted %.0f msg/s (%s); deliveries %d in %.1fs = %.0f deliveries/s (all event types, global webhook); load average %s\n",
		n, res.PerSecond(), res, deliveries, span.Seconds(), float64(deliveries)/span.Seconds(), benchutil.LoadAvg())
}
