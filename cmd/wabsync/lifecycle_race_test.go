package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/testutil"
)

// Connect, disconnect, restart and logout racing on one session each
// succeed or answer 409 CONFLICT: never a 5xx.
func TestSessionActionsRace(t *testing.T) {
	ts := mustRunMain(t)
	yes := true
	s, _ := ts.sandboxSession("race", client.SessionConfig{AutoLink: &yes})
	raceActions(t, []*testServer{ts}, s.ID)
}

// The same across two nodes of one PostgreSQL database, where the
// session's lease changes hands between them.
func TestSessionActionsRaceTwoNodes(t *testing.T) {
	testutil.RequirePostgres(t)
	cfg := testConfig(t)
	cfg.LeaseTTL = 5 * time.Second
	cfgA, cfgB := cfg, cfg
	cfgA.NodeID, cfgB.NodeID = "node-a", "node-b"
	cfgB.DataDir = t.TempDir()
	a := mustRunConfig(t, cfgA)
	b := mustRunConfig(t, cfgB)
	yes := true
	s, _ := a.sandboxSession("race", client.SessionConfig{AutoLink: &yes})
	raceActions(t, []*testServer{a, b}, s.ID)
}

// raceActions sends actions on session id from many goroutines, spread over
// nodes, and checks every answer, then that the session still connects.
func raceActions(t *testing.T, nodes []*testServer, id string) {
	actions := []string{"connect", "disconnect", "restart", "connect", "logout"}
	const workers, rounds = 12, 25
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := nodes[w%len(nodes)]
			for i := range rounds {
				a := actions[(w+i)%len(actions)]
				r := ts.Do("POST", "/api/v1/sessions/"+id+"/"+a, testAdminToken, nil)
				key := fmt.Sprintf("%s %d", a, r.Status)
				if r.Status != 200 {
					key += " " + r.Err(t).Code
				}
				mu.Lock()
				seen[key]++
				mu.Unlock()
				if r.Status != 200 && r.Status != 409 {
					t.Errorf("%s: %d %s", a, r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v", seen)
	// The session is usable afterwards.
	if r := nodes[0].Do("POST", "/api/v1/sessions/"+id+"/connect", testAdminToken, nil); r.Status != 200 {
		t.Fatalf("connect after the race: %d %s", r.Status, r.Body)
	}
	nodes[0].waitStatus(id, "connected", 10*time.Second)
}
