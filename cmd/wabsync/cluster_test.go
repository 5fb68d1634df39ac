package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wabsync/wabsync/client"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/testutil"
)

const clusterLeaseTTL = 5 * time.Second

// clusterNode is one wabsync process of a cluster test.
type clusterNode struct {
	*serverProcess
	id    string
	admin *client.Client
}

func startClusterNode(t *testing.T, bin, dbURL, id string) *clusterNode {
	t.Helper()
	addr := freeAddr(t)
	p := &serverProcess{t: t, bin: bin, url: "http://" + addr, logs: &logSink{}, env: []string{
		"WABSYNC_ADDR=" + addr,
		"WABSYNC_DATA_DIR=" + filepath.Join(t.TempDir(), id),
		"WABSYNC_DATABASE_URL=" + dbURL,
		"WABSYNC_ADMIN_TOKEN=" + testAdminToken,
		"WABSYNC_NODE_ID=" + id,
		"WABSYNC_LEASE_TTL=" + clusterLeaseTTL.String(),
		"WABSYNC_ALLOW_PRIVATE_URLS=true",
		"WABSYNC_WEBHOOK_TIMEOUT=1s",
		"WABSYNC_RATE_LIMIT=100000000",
		"WABSYNC_SEND_RATE=200",
		"WABSYNC_SEND_BURST=200",
		"WABSYNC_LOG_LEVEL=warn",
	}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("node %s log:\n%s", id, p.logs)
		}
	})
	c, err := client.New(p.url, testAdminToken)
	if err != nil {
		t.Fatal(err)
	}
	return &clusterNode{serverProcess: p, id: id, admin: c}
}

// terminate stops the node gracefully (SIGTERM) and waits for it to exit.
func (n *clusterNode) terminate() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	<-n.done
}

func listNodes(t *testing.T, c *client.Client) []client.Node {
	t.Helper()
	resp, err := c.ListNodesWithResponse(context.Background())
	if err != nil || resp.JSON200 == nil {
		t.Fatalf("list nodes: %v %s", err, resp.Body)
	}
	return resp.JSON200.Data.Items
}

// TestClusterFailover runs three real wabsync processes on one PostgreSQL
// database with 60 sandbox sessions exchanging messages and webhooks to a
// local receiver, SIGKILLs one node and checks: its sessions run on the
// survivors within lease expiry + 5 s; every accepted message reaches a final
// state exactly once; every event reaches the receiver with no gap in any
// session's sequence; no session ran on two nodes at once (lease log). Then it
// stops a node gracefully and its sessions move in under 2 s.
func TestClusterFailover(t *testing.T) {
	pg := testutil.RequirePostgres(t)
	dbURL := testutil.NewPostgresDatabase(t, pg)
	bin := buildBinary(t)
	recv := mustHookReceiver(t, nil, nil)
	ctx := context.Background()

	nodes := []*clusterNode{startClusterNode(t, bin, dbURL, "n1")}
	// The first node migrates; the others start on the migrated database.
	nodes = append(nodes, startClusterNode(t, bin, dbURL, "n2"), startClusterNode(t, bin, dbURL, "n3"))
	started := append([]*clusterNode(nil), nodes...) // the senders' view; nodes shrinks below
	any := func() *client.Client { return started[rand.IntN(len(started))].admin }

	star := []client.WebhookEventFilter{"*"}
	if _, err := nodes[0].admin.CreateGlobalWebhookWithResponse(ctx, nil, client.CreateGlobalWebhookJSONRequestBody{URL: recv.URL + "/hook", Events: star}); err != nil {
		t.Fatal(err)
	}

	// 60 linked sandbox sessions, connected through the three nodes in turn,
	// so that each node runs a third of them.
	const sessions = 60
	yes := true
	eng := client.Engine("sandbox")
	ids := make([]string, sessions)
	phones := make([]string, sessions)
	for i := range ids {
		phone := fmt.Sprintf("+1555019%05d", i)
		s, err := nodes[0].admin.CreateSession(ctx, client.CreateSessionRequest{Name: fmt.Sprintf("s%d", i), Engine: &eng,
			Config: &client.SessionConfig{AutoLink: &yes, Phone: &phone}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i], phones[i] = s.Session.ID, phone
		if _, err := nodes[i%3].admin.Connect(ctx, ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		waitConnected(t, nodes[0].admin, id, time.Time{})
	}
	for _, n := range listNodes(t, nodes[0].admin) {
		if !n.Alive || n.Sessions != sessions/3 {
			t.Fatalf("before the kill, node %s alive=%v runs %d sessions; want %d each", n.ID, n.Alive, n.Sessions, sessions/3)
		}
	}

	// Messages flow from session i to session i+30 through random nodes,
	// before, during and after the kill.
	type sent struct{ sender, id, text string }
	var mu sync.Mutex
	var accepted []sent
	var seq atomic.Int64
	stopSending := make(chan struct{})
	var senders sync.WaitGroup
	for w := 0; w < 6; w++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for {
				select {
				case <-stopSending:
					return
				default:
				}
				i := rand.IntN(sessions / 2)
				text := fmt.Sprintf("m%d", seq.Add(1))
				c := started[rand.IntN(2)].admin // n1, n2: the survivors
				if rand.IntN(3) == 0 {
					c = any()
				}
				m, err := c.SendText(ctx, ids[i], client.SendTextRequest{To: client.Recipient(phones[i+sessions/2]), Text: text})
				if err != nil {
					continue // a request to the killed node, or during the kill
				}
				mu.Lock()
				accepted = append(accepted, sent{ids[i], m.ID, text})
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	time.Sleep(2 * time.Second)

	killed := nodes[2]
	killed.kill()
	killedAt := time.Now()
	nodes = nodes[:2]
	// Every session runs again, on the survivors, within lease expiry + 5 s.
	deadline := killedAt.Add(clusterLeaseTTL + 5*time.Second)
	for {
		total := 0
		for _, n := range listNodes(t, nodes[0].admin) {
			if n.ID != killed.id && n.Alive {
				total += n.Sessions
			}
		}
		if total == sessions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the kill, the survivors run %d of %d sessions: %+v", time.Since(killedAt), total, sessions, listNodes(t, nodes[0].admin))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range ids {
		s, err := nodes[0].admin.GetSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status != "connected" {
			waitConnected(t, nodes[0].admin, id, killedAt)
		}
	}
	t.Logf("sessions of the killed node run on the survivors %v after the kill (lease TTL %v)", time.Since(killedAt).Round(time.Millisecond), clusterLeaseTTL)
	time.Sleep(time.Second)
	close(stopSending)
	senders.Wait()

	// Every accepted message reaches a final state, and its recipient has it
	// exactly once.
	mu.Lock()
	all := append([]sent(nil), accepted...)
	mu.Unlock()
	if len(all) < 100 {
		t.Fatalf("only %d messages accepted", len(all))
	}
	testutil.Eventually(t, 90*time.Second, func() bool {
		for _, m := range all {
			got, err := nodes[0].admin.GetMessage(ctx, m.sender, m.id)
			if err != nil || got.Status != "delivered" {
				return false
			}
		}
		return true
	}, "every accepted message delivered")
	inbox := map[string]int{}
	for i := sessions / 2; i < sessions; i++ {
		for _, m := range listAll(t, nodes[0].admin, ids[i], "in") {
			if m.Text != nil {
				inbox[*m.Text]++
			}
		}
	}
	for _, m := range all {
		if inbox[m.text] != 1 {
			t.Errorf("message %q is in its recipient's inbox %d times", m.text, inbox[m.text])
		}
	}

	// Every event reached the receiver, with no gap in any session's sequence.
	db, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testutil.Eventually(t, 90*time.Second, func() bool {
		got := map[string]map[int64]bool{}
		for _, ev := range recv.Events() {
			if ev.SessionID == nil {
				continue
			}
			if got[*ev.SessionID] == nil {
				got[*ev.SessionID] = map[int64]bool{}
			}
			got[*ev.SessionID][ev.Sequence] = true
		}
		for _, id := range ids {
			last, err := db.LatestEventSeq(ctx, id)
			if err != nil {
				return false
			}
			for s := int64(1); s <= last; s++ {
				if !got[id][s] {
					return false
				}
			}
		}
		return true
	}, "every event of every session at the receiver, without gaps")

	// No session ran on two nodes at once: each holding ends (released, or
	// its last renewal plus the TTL) before the next one starts.
	checkLeaseLog(t, db)

	// A graceful stop hands the sessions over at once.
	leaving := nodes[1]
	before := listNodes(t, nodes[0].admin)
	t.Logf("nodes before the graceful stop: %+v", before)
	moving := 0
	for _, n := range before {
		if n.ID == leaving.id {
			moving = n.Sessions
		}
	}
	stopAt := time.Now()
	leaving.terminate()
	stopped := time.Since(stopAt)
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, n := range listNodes(t, nodes[0].admin) {
			if n.ID == nodes[0].id {
				return n.Sessions == sessions
			}
		}
		return false
	}, "the last node runs every session")
	moved := time.Since(stopAt) - stopped
	t.Logf("graceful stop: %d sessions moved %v after the node exited (the exit took %v)", moving, moved.Round(time.Millisecond), stopped.Round(time.Millisecond))
	if moved > 2*time.Second {
		t.Errorf("a graceful stop moved its sessions in %v; want under 2 s", moved)
	}
	checkLeaseLog(t, db)
}

func listAll(t *testing.T, c *client.Client, session, direction string) []client.Message {
	t.Helper()
	var out []client.Message
	limit := 100
	dir := client.Direction(direction)
	params := &client.ListMessagesParams{Limit: &limit, Direction: &dir}
	for {
		l, err := c.ListMessages(context.Background(), session, params)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l.Items...)
		if !l.HasMore {
			return out
		}
		params.Cursor = l.NextCursor
	}
}

func checkLeaseLog(t *testing.T, db *store.DB) {
	t.Helper()
	log, err := db.LeaseLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	by := map[string][]store.LeaseLogEntry{}
	for _, e := range log {
		by[e.SessionID] = append(by[e.SessionID], e)
	}
	for id, es := range by {
		sort.Slice(es, func(i, j int) bool { return es[i].AcquiredAt.Before(es[j].AcquiredAt) })
		for i := 1; i < len(es); i++ {
			prev, cur := es[i-1], es[i]
			end := prev.RenewedAt.Add(clusterLeaseTTL)
			if prev.ReleasedAt != nil && prev.ReleasedAt.Before(end) {
				end = *prev.ReleasedAt
			}
			if cur.AcquiredAt.Before(end) && prev.NodeID != cur.NodeID {
				t.Errorf("session %s: %s held it until %v but %s took it at %v", id, prev.NodeID, end, cur.NodeID, cur.AcquiredAt)
			}
		}
	}
}
