package webhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/safehttp"
	"github.com/wabsync/wabsync/internal/store"
)

// Options tune a Dispatcher. Zero values take the defaults named.
type Options struct {
	// AllowPrivate lets deliveries reach loopback, private, link-local and
	// metadata addresses (WABSYNC_ALLOW_PRIVATE_URLS). Off, such targets are
	// refused when dialled, whatever the URL's host resolved to at creation.
	AllowPrivate bool
	// Timeout bounds one attempt, from dialling to the end of the response
	// (default 10 s).
	Timeout time.Duration
	// Concurrency bounds the attempts in flight overall (default 64).
	Concurrency int
	// PerEndpoint bounds the attempts in flight to one webhook (default 4),
	// so that a slow receiver holds at most that many of the Concurrency
	// slots and never starves the others.
	PerEndpoint int
	// QueuePerEndpoint bounds the deliveries of one webhook this node holds
	// (claimed, waiting or in flight; default 64) until its attempts are
	// seen to be fast.
	QueuePerEndpoint int
	// MaxQueuePerEndpoint bounds the deliveries held for an endpoint whose
	// attempts are fast (default MaxHeld/2): its queue may grow to what
	// PerEndpoint attempts at its recent latency get through in an eighth of
	// Lease, so that a backlog is claimed in few, large claims (each a write
	// that may queue behind others) while a slow endpoint holds few.
	MaxQueuePerEndpoint int
	// MaxHeld bounds the deliveries this node holds overall (default 2048).
	MaxHeld int
	// BatchSize is the most deliveries one claim takes (default 256).
	BatchSize int
	// Lease is how long a claim lasts before another worker may take the
	// delivery (default: long enough for a full endpoint queue to drain at
	// Timeout per attempt, at least one minute). A worker that dies loses
	// its claims when they lapse.
	Lease time.Duration
	// PollInterval is how often the queue is checked without a Notify: for
	// retries that fall due and for events stored by other nodes (default 1 s).
	PollInterval time.Duration
	// Schedule is the retry schedule (default DefaultSchedule).
	Schedule []time.Duration
	// RetryFor is how long a delivery is retried before it is marked failed
	// (default 3 days); the last attempt is the first one past it.
	RetryFor time.Duration
	// DisableAfter disables a webhook whose every attempt failed for this
	// long (default 3 days; negative: never).
	DisableAfter time.Duration
	// OpenAfter is how many attempts in a row must fail for an endpoint's
	// circuit to open (default 3): while it is open, one probe at a time is
	// attempted (after ProbeDelay), and its other deliveries wait, parked in
	// the store, until a probe succeeds — then they are all due at once. A
	// down endpoint so costs one attempt and a write per probe, not per
	// waiting delivery. A single failing delivery (a receiver that rejects
	// one event) does not open it. The user's action ends the wait at once,
	// on whichever node holds the circuit: a change to the webhook (enabling
	// it, a new URL) resets it, and a delivery retried with retry-now is
	// attempted at once, and resets it too.
	OpenAfter int
	// MaxResponse is how much of a response is read (default 64 KiB).
	MaxResponse int64
	// Now is the clock (default: the database's). Retry times, the
	// webhook-timestamp header and attempt times come from it.
	Now func() time.Time
	// Logger logs failures (never secrets or bodies).
	Logger *slog.Logger
}

func (o *Options) setDefaults(db *store.DB) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = 4
	}
	if o.QueuePerEndpoint <= 0 {
		o.QueuePerEndpoint = 64
	}
	o.QueuePerEndpoint = max(o.QueuePerEndpoint, o.PerEndpoint)
	if o.MaxHeld <= 0 {
		o.MaxHeld = 2048
	}
	o.MaxHeld = max(o.MaxHeld, o.QueuePerEndpoint)
	if o.MaxQueuePerEndpoint <= 0 {
		o.MaxQueuePerEndpoint = o.MaxHeld / 2
	}
	o.MaxQueuePerEndpoint = min(max(o.MaxQueuePerEndpoint, o.QueuePerEndpoint), o.MaxHeld)
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.Lease <= 0 {
		waits := o.QueuePerEndpoint/o.PerEndpoint + 2
		o.Lease = max(time.Minute, time.Duration(waits)*o.Timeout)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if len(o.Schedule) == 0 {
		o.Schedule = DefaultSchedule
	}
	if o.RetryFor <= 0 {
		o.RetryFor = 72 * time.Hour
	}
	if o.DisableAfter == 0 {
		o.DisableAfter = 72 * time.Hour
	}
	if o.OpenAfter <= 0 {
		o.OpenAfter = 3
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = 64 << 10
	}
	if o.Now == nil {
		o.Now = func() time.Time { return db.Now() }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// userAgent is sent with every delivery.
var userAgent = "WabSync-Webhooks/" + wabsync.Version

// Dispatcher delivers due webhook deliveries: it claims them from the store
// in batches, POSTs each signed event, and records every attempt. Run it
// once per node; several nodes may run one against the same PostgreSQL
// database. Wake it with Notify when events are stored.
type Dispatcher struct {
	db     *store.DB
	o      Options
	client *http.Client

	wake chan struct{} // Notify
	room chan struct{} // held deliveries dropped below a claim threshold
	stop chan struct{}
	done chan struct{}

	mu        sync.Mutex
	cond      *sync.Cond // broadcast when a held delivery is finished
	eps       map[string]*endpoint
	circuits  map[string]*circuit // endpoints whose last attempts failed
	ready     []*endpoint         // endpoints with queued deliveries and a free slot
	held      int                 // claimed and not yet recorded
	inflight  int
	recording int   // attempted, being recorded
	finished  int64 // held deliveries let go: recorded (or failed to be), or left to be claimed again
	waitRoom  bool  // the last claim found too little free room: roomFreed wakes the loop
	stopping  bool
	running   bool
	wg        sync.WaitGroup

	attempts  atomic.Int64
	succeeded atomic.Int64
}

// endpoint is the deliveries this node holds for one webhook.
type endpoint struct {
	id       string
	queue    []*store.ClaimedDelivery
	inflight int
	held     int           // queued or in flight
	latency  time.Duration // recent attempts, on average (0: none yet)
	inReady  bool
}

// queueCap is how many deliveries ep may hold: QueuePerEndpoint, or more
// while its attempts are fast (see MaxQueuePerEndpoint). d.mu is held.
func (d *Dispatcher) queueCap(ep *endpoint) int {
	if ep == nil || ep.latency <= 0 {
		return d.o.QueuePerEndpoint
	}
	n := int64(d.o.PerEndpoint) * int64(d.o.Lease/8) / int64(ep.latency)
	return int(min(max(n, int64(d.o.QueuePerEndpoint)), int64(d.o.MaxQueuePerEndpoint)))
}

// circuit is this node's view of an endpoint whose last attempts failed.
type circuit struct {
	fails int       // attempts failed in a row
	since time.Time // the first of them
	// updated is the webhook's updated_at when the failed attempts were
	// claimed: a change since (re-enabled, a new URL) resets the circuit.
	updated time.Time
	open    bool      // OpenAfter failed in a row: only probes are attempted
	probeAt time.Time // when open: the next probe
	probe   string    // when open: the delivery being probed ("" none)
}

// NewDispatcher returns a Dispatcher over db. It shares one HTTP transport
// (connections are reused) that refuses private targets unless
// o.AllowPrivate and follows no redirects.
func NewDispatcher(db *store.DB, o Options) *Dispatcher {
	o.setDefaults(db)
	d := &Dispatcher{
		db: db,
		o:  o,
		client: safehttp.NewClient(safehttp.Options{
			AllowPrivate:    o.AllowPrivate,
			Timeout:         o.Timeout,
			MaxRedirects:    0,
			MaxConnsPerHost: o.Concurrency,
		}),
		wake: make(chan struct{}, 1),
		room: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		eps:  map[string]*endpoint{},

		circuits: map[string]*circuit{},
	}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// Notify tells the dispatcher that deliveries may be due (an event was
// stored). It never blocks; the store's OnEvent hook calls it.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stats are counters since the dispatcher started.
type Stats struct {
	Attempts  int64 // attempts made
	Succeeded int64 // attempts answered with a 2xx
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{Attempts: d.attempts.Load(), Succeeded: d.succeeded.Load()}
}

// ErrRunning is returned by Run when the dispatcher already runs or was closed.
var ErrRunning = errors.New("webhook: dispatcher already running or closed")

// Run delivers until ctx ends or Close is called. It then stops claiming,
// lets the attempts in flight finish (each bounded by Timeout) and records
// them, and hands back the deliveries it held but had not started.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running || d.stopping {
		d.mu.Unlock()
		return ErrRunning
	}
	d.running = true
	d.mu.Unlock()
	defer close(d.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ticker := time.NewTicker(d.o.PollInterval)
	defer ticker.Stop()
	for ctx.Err() == nil {
		n, more, err := d.claim(ctx)
		if err != nil && ctx.Err() == nil {
			d.o.Logger.Warn("webhook: claiming deliveries failed", "err", err)
			select {
			case <-ctx.Done():
			case <-ticker.C:
			}
			continue
		}
		if n > 0 || more {
			continue
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-d.room:
		case <-ticker.C:
		}
	}
	d.shutdown()
	return nil
}

// Close stops Run and waits for it to finish its attempts in flight.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	running := d.running
	if !d.stopping {
		d.stopping = true
		close(d.stop)
	}
	d.mu.Unlock()
	if running {
		<-d.done
	}
	d.client.CloseIdleConnections()
	return nil
}

// RunOnce delivers everything that is due now, including deliveries that
// fall due while it runs (a webhook.disabled event's, a recovered
// endpoint's released backlog), and returns once every attempt is recorded.
// It reports how many attempts it made. Tests drive the dispatcher with it
// and a fake clock; it must not run alongside Run.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	total := 0
	for {
		before := d.finishedCount()
		n, more, err := d.claim(ctx)
		total += n
		if err != nil {
			d.waitIdle()
			return total, err
		}
		if n > 0 || more {
			continue
		}
		// Nothing due: done once every attempt is recorded, unless a held
		// delivery was finished with since this claim began (its record may
		// have made others due, or it was left to be claimed again, so that
		// claiming again may find more).
		d.waitIdle()
		if d.finishedCount() == before {
			return total, nil
		}
	}
}

// waitIdle waits until no delivery is held.
func (d *Dispatcher) waitIdle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.held > 0 {
		d.cond.Wait()
	}
}

// finishedCount returns how many held deliveries were finished with so far:
// their attempts recorded (or failed to be), or left to be claimed again.
func (d *Dispatcher) finishedCount() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.finished
}

// lowWater is the free room below which the dispatcher does not claim, so
// that a busy queue is claimed in batches rather than one delivery at a time.
func (d *Dispatcher) lowWater() int { return max(1, min(d.o.BatchSize, d.o.MaxHeld/2)) }

// claim claims due deliveries into the endpoint queues and starts what the
// concurrency bounds allow. It reports how many it claimed, and whether
// more may be due now (the claim took or parked all it could).
func (d *Dispatcher) claim(ctx context.Context) (int, bool, error) {
	d.mu.Lock()
	if d.stopping {
		d.mu.Unlock()
		return 0, false, nil
	}
	free := d.o.MaxHeld - d.held
	if free < d.lowWater() && d.held > 0 {
		d.waitRoom = true // roomFreed wakes the claim loop
		d.mu.Unlock()
		return 0, false, nil
	}
	now := d.o.Now()
	room := make(map[string]int, len(d.eps)+len(d.circuits))
	limit := min(free, d.o.BatchSize)
	for id, ep := range d.eps {
		// An endpoint more than half full is left out until it drains to
		// half, so that its backlog is claimed in batches too.
		if c := d.queueCap(ep); ep.held > c/2 {
			room[id] = 0
		} else {
			room[id] = c - ep.held
			limit = max(limit, min(free, room[id]))
		}
	}
	var hold map[string]store.Hold
	for id, cb := range d.circuits {
		switch {
		case cb.open && cb.probe == "" && now.Sub(cb.probeAt) > 24*time.Hour:
			// A probe due for a day with nothing to probe: the webhook was
			// deleted or disabled. Forget it (failures open it again).
			delete(d.circuits, id)
		case !cb.open:
		case cb.probe != "":
			room[id] = 0 // its probe is out
		case now.Before(cb.probeAt):
			if hold == nil {
				hold = map[string]store.Hold{}
			}
			hold[id] = store.Hold{Until: cb.probeAt, WebhookUpdatedAt: cb.updated}
		default:
			// One probe, once the attempts still out are done.
			room[id] = 0
			if ep := d.eps[id]; ep == nil || ep.held == 0 {
				room[id] = 1
			}
		}
	}
	d.mu.Unlock()

	claim, err := d.db.ClaimDue(store.Background(ctx), now, store.ClaimOptions{
		Limit:         limit,
		Lease:         d.o.Lease,
		MaxPerWebhook: d.o.QueuePerEndpoint,
		Room:          room,
		Hold:          hold,
		MinPark:       max(1, d.o.BatchSize/4),
		// A waiting delivery shows the next probe as its next attempt
		// within a poll.
		ParkAfter: d.o.PollInterval,
	})
	if err != nil || len(claim.Deliveries) == 0 {
		return 0, claim.More, err
	}
	d.mu.Lock()
	park := map[time.Time][]string{}
	for _, c := range claim.Deliveries {
		if cb := d.circuits[c.WebhookID]; cb != nil && (c.Retried || c.WebhookUpdatedAt.After(cb.updated)) {
			// The user retried a delivery or changed the webhook (enabled
			// it, a new URL): their action wins over the circuit.
			delete(d.circuits, c.WebhookID)
			if cb.open {
				d.o.Logger.Info("webhook: circuit reset by the user; deliveries are attempted again",
					"webhook_id", c.WebhookID, "retried", c.Retried)
			}
		}
		if cb := d.circuits[c.WebhookID]; cb != nil && cb.open {
			if cb.probe != "" || now.Before(cb.probeAt) {
				// The circuit opened while this claim ran.
				park[cb.probeAt] = append(park[cb.probeAt], c.ID)
				continue
			}
			cb.probe = c.ID
		}
		ep := d.eps[c.WebhookID]
		if ep == nil {
			ep = &endpoint{id: c.WebhookID}
			d.eps[c.WebhookID] = ep
		}
		ep.queue = append(ep.queue, c)
		ep.held++
		d.held++
		d.markReady(ep)
	}
	d.pump()
	d.mu.Unlock()
	for at, ids := range park {
		d.park(ids, at)
	}
	return len(claim.Deliveries), claim.More, nil
}

// park hands back claimed deliveries of an endpoint whose circuit is open,
// due at its next probe.
func (d *Dispatcher) park(ids []string, at time.Time) {
	ctx, cancel := context.WithTimeout(store.Background(context.Background()), 30*time.Second)
	defer cancel()
	if err := d.db.ParkClaims(ctx, ids, at); err != nil {
		d.o.Logger.Warn("webhook: handing back the deliveries of a down endpoint failed; they lapse with their lease", "err", err)
	}
}

// markReady puts ep in the ready ring if it has work and a free slot.
// d.mu is held.
func (d *Dispatcher) markReady(ep *endpoint) {
	if !ep.inReady && len(ep.queue) > 0 && ep.inflight < d.o.PerEndpoint {
		ep.inReady = true
		d.ready = append(d.ready, ep)
	}
}

// pump starts attempts, round-robin over the ready endpoints, while there
// are free slots. d.mu is held.
func (d *Dispatcher) pump() {
	for !d.stopping && d.inflight < d.o.Concurrency && len(d.ready) > 0 {
		ep := d.ready[0]
		d.ready[0] = nil
		d.ready = d.ready[1:]
		ep.inReady = false
		if len(ep.queue) == 0 || ep.inflight >= d.o.PerEndpoint {
			continue // its queue was handed back meanwhile
		}
		c := ep.queue[0]
		ep.queue[0] = nil
		ep.queue = ep.queue[1:]
		ep.inflight++
		d.inflight++
		d.markReady(ep)
		d.wg.Add(1)
		go d.deliver(ep, c)
	}
}

// deliver makes one attempt at c and records it.
func (d *Dispatcher) deliver(ep *endpoint, c *store.ClaimedDelivery) {
	defer d.wg.Done()
	if !d.o.Now().Before(c.ClaimedUntil.Add(-d.o.Timeout)) {
		// Its claim may lapse before the attempt ends, and another worker
		// take it: leave it to be claimed again.
		d.mu.Lock()
		if cb := d.circuits[ep.id]; cb != nil && cb.probe == c.ID {
			// It was its open circuit's probe, and no attempt was made:
			// the probe is due still, and the next claim takes one. Left
			// set, it would keep every claim from the endpoint for good
			// (only an attempt at the probe clears it), and the endpoint's
			// deliveries would wait for ever.
			cb.probe = ""
		}
		ep.inflight--
		d.inflight--
		ep.held--
		d.held--
		// It is due again (its claim lapsed or is about to): RunOnce claims
		// again.
		d.finished++
		if ep.held == 0 && ep.inflight == 0 && len(ep.queue) == 0 {
			delete(d.eps, ep.id)
		} else {
			d.markReady(ep)
		}
		d.pump()
		d.cond.Broadcast()
		d.mu.Unlock()
		d.signalRoom()
		return
	}
	a, ok := d.attempt(c)
	d.attempts.Add(1)
	if ok {
		d.succeeded.Add(1)
	}
	r := d.result(c, a, ok)
	d.mu.Lock()
	ep.inflight--
	d.inflight--
	lat := max(time.Duration(a.LatencyMS)*time.Millisecond, time.Millisecond)
	if ep.latency == 0 {
		ep.latency = lat
	} else {
		ep.latency += (lat - ep.latency) / 8
	}
	// The endpoint has room again as soon as the attempt is made: until it
	// is recorded, its claim keeps it from being claimed again.
	ep.held--
	d.recording++
	closed, parked, parkAt := d.trip(ep, c, r)
	if ep.held == 0 && ep.inflight == 0 && len(ep.queue) == 0 {
		delete(d.eps, ep.id)
	} else {
		d.markReady(ep)
	}
	// Claim again whenever an endpoint is at most half full (a batch of
	// completions may step over any exact count).
	roomNow := ep.held <= d.queueCap(ep)/2
	d.pump()
	d.mu.Unlock()
	if roomNow {
		d.signalRoom()
	}
	if len(parked) > 0 {
		d.park(parked, parkAt)
		d.mu.Lock()
		d.held -= len(parked)
		freed := d.roomFreed()
		d.cond.Broadcast()
		d.mu.Unlock()
		if freed {
			d.signalRoom()
		}
	}

	d.record(c, r)
	if closed {
		// The endpoint is back: its parked deliveries are due now (and the
		// record made the rest due), so claim at once.
		d.Notify()
	}
	// A failure whose next attempt has already come (the attempt or its
	// record took longer than the backoff) is due again at once.
	due := !r.Succeeded && !r.NextAttemptAt.IsZero() && !r.NextAttemptAt.After(d.o.Now())

	d.mu.Lock()
	d.recording--
	d.finished++
	d.held--
	freed := d.roomFreed()
	d.cond.Broadcast()
	d.mu.Unlock()
	// The record ended the claim. It made nothing else due (a success that
	// released a backlog notified, above and in record), so the claim loop
	// is woken only if it waits for room or the delivery is due again:
	// waking it after every record kept it reading the whole due set once
	// per record while a backlog of attempts was recorded, for nothing.
	if freed || due {
		d.signalRoom()
	}
}

// roomFreed reports whether the claim loop waits for free room (waitRoom)
// and now has it, and then clears waitRoom: the caller signals room.
// Called when held drops; d.mu is held.
func (d *Dispatcher) roomFreed() bool {
	if d.waitRoom && d.held <= d.o.MaxHeld-d.lowWater() {
		d.waitRoom = false
		return true
	}
	return false
}

// trip updates ep's circuit with the outcome r of attempt c. A success
// closes it (closed: it was open). A failure counts; the OpenAfter-th in a
// row opens it, and then the deliveries ep has queued are taken out, to be
// handed back due at the first probe (the caller parks them and lowers the
// node's count of held deliveries). d.mu is held.
func (d *Dispatcher) trip(ep *endpoint, c *store.ClaimedDelivery, r store.AttemptResult) (closed bool, parked []string, at time.Time) {
	cb := d.circuits[ep.id]
	if r.Succeeded {
		if cb != nil {
			delete(d.circuits, ep.id)
			closed = cb.open
		}
		return closed, nil, time.Time{}
	}
	wasProbe := cb != nil && cb.open && cb.probe == c.ID
	if wasProbe {
		cb.probe = ""
	}
	if cb != nil && c.WebhookUpdatedAt.Before(cb.updated) && !wasProbe {
		// An attempt at the webhook as it was before a change: it says
		// nothing of the endpoint now.
		return false, nil, time.Time{}
	}
	if cb != nil && c.WebhookUpdatedAt.After(cb.updated) {
		// The webhook changed since the circuit's failures: start again.
		cb = nil
	}
	if cb == nil {
		cb = &circuit{since: r.Attempt.At, updated: c.WebhookUpdatedAt}
		d.circuits[ep.id] = cb
	}
	cb.fails++
	if !wasProbe && (cb.open || cb.fails < d.o.OpenAfter) {
		return false, nil, time.Time{}
	}
	opening := !cb.open
	cb.open = true
	// The next probe: after ProbeDelay, and no later than this delivery's
	// own next attempt.
	cb.probeAt = r.Attempt.At.Add(ProbeDelay(d.o.Schedule, r.Attempt.At.Sub(cb.since)))
	if !r.NextAttemptAt.IsZero() && r.NextAttemptAt.Before(cb.probeAt) {
		cb.probeAt = r.NextAttemptAt
	}
	// As stored: a delivery parked until then is due when the probe is.
	cb.probeAt = cb.probeAt.Truncate(time.Microsecond)
	if opening {
		d.o.Logger.Warn("webhook: endpoint failing; only probes are attempted until one succeeds",
			"webhook_id", ep.id, "failed_in_a_row", cb.fails, "next_probe", cb.probeAt)
		for _, q := range ep.queue {
			parked = append(parked, q.ID)
		}
		ep.held -= len(ep.queue)
		ep.queue = nil
	}
	return false, parked, cb.probeAt
}

func (d *Dispatcher) signalRoom() {
	select {
	case d.room <- struct{}{}:
	default:
	}
}

// attempt POSTs c's event, signed, and reports the attempt and whether it
// succeeded (a 2xx within the timeout).
func (d *Dispatcher) attempt(c *store.ClaimedDelivery) (wabsync.DeliveryAttempt, bool) {
	at := d.o.Now().UTC()
	a := wabsync.DeliveryAttempt{At: at}
	req, err := http.NewRequest(http.MethodPost, c.URL, bytes.NewReader(c.Body))
	if err != nil {
		a.Error = "invalid URL"
		return a, false
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{userAgent}
	h["Webhook-Id"] = []string{c.EventID}
	h["Webhook-Timestamp"] = []string{strconv.FormatInt(at.Unix(), 10)}
	h["Webhook-Signature"] = []string{SignAll(c.Secrets, c.EventID, at, c.Body)}
	start := time.Now()
	resp, err := d.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, d.o.MaxResponse))
		resp.Body.Close()
		a.StatusCode = resp.StatusCode
	}
	a.LatencyMS = time.Since(start).Milliseconds()
	switch {
	case a.StatusCode == 0:
		a.Error = attemptError(err)
	case a.StatusCode < 200 || a.StatusCode > 299:
		a.Error = "HTTP " + strconv.Itoa(a.StatusCode)
		if a.StatusCode >= 300 && a.StatusCode < 400 {
			a.Error += " (redirects are not followed)"
		}
	case err != nil:
		// A 2xx whose body broke off still counts: the receiver answered.
	}
	return a, a.Error == ""
}

// result is what is recorded of attempt a at c.
func (d *Dispatcher) result(c *store.ClaimedDelivery, a wabsync.DeliveryAttempt, ok bool) store.AttemptResult {
	r := store.AttemptResult{Attempt: a, Succeeded: ok}
	if !ok {
		if a.At.Sub(c.CreatedAt) < d.o.RetryFor {
			r.NextAttemptAt = a.At.Add(Backoff(d.o.Schedule, c.AttemptCount+1))
		}
		if d.o.DisableAfter > 0 {
			r.DisableAfter = d.o.DisableAfter
		}
	}
	return r
}

// record stores the attempt. It outlives Close: an attempt that was made is
// recorded, or its claim lapses and it is made again.
func (d *Dispatcher) record(c *store.ClaimedDelivery, r store.AttemptResult) {
	ctx, cancel := context.WithTimeout(store.Background(context.Background()), 30*time.Second)
	defer cancel()
	out, err := d.db.RecordAttempt(ctx, c, r)
	if err != nil {
		d.o.Logger.Error("webhook: recording an attempt failed; it will be made again when its claim lapses",
			"webhook_id", c.WebhookID, "delivery_id", c.ID, "err", err)
		return
	}
	if !r.Succeeded {
		d.o.Logger.Debug("webhook: delivery failed", "webhook_id", c.WebhookID, "delivery_id", c.ID,
			"attempt", c.AttemptCount+1, "error", r.Attempt.Error, "next_attempt_at", r.NextAttemptAt)
	}
	if out.Disabled {
		d.o.Logger.Warn("webhook: endpoint disabled after failing for too long", "webhook_id", c.WebhookID)
	}
	if out.Released > 0 {
		d.o.Logger.Info("webhook: endpoint recovered; its waiting deliveries are due now",
			"webhook_id", c.WebhookID, "released", out.Released)
		d.Notify()
	}
}

// shutdown hands back the deliveries held but not started and waits for
// the attempts in flight.
func (d *Dispatcher) shutdown() {
	d.mu.Lock()
	d.stopping = true
	var ids []string
	for id, ep := range d.eps {
		for _, c := range ep.queue {
			ids = append(ids, c.ID)
		}
		ep.held -= len(ep.queue)
		d.held -= len(ep.queue)
		ep.queue = nil
		if ep.held == 0 {
			delete(d.eps, id)
		}
	}
	d.ready = nil
	d.cond.Broadcast()
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(store.Background(context.Background()), 10*time.Second)
	defer cancel()
	if err := d.db.ReleaseClaims(ctx, ids); err != nil {
		d.o.Logger.Warn("webhook: releasing claims failed; they lapse with their lease", "err", err)
	}
	d.wg.Wait()
}
