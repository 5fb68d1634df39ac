package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
)

// The deliveries table is the webhook queue: one row per (event, webhook),
// inserted by AddEvent in the event's transaction. A row is due when it is
// pending, its next_attempt_at has passed and no worker holds a claim on it
// (claimed_until in the past). A worker claims due rows by setting
// claimed_until (a lease: a worker that dies loses its claims when it
// expires), POSTs them and records each attempt, which ends the claim.
// A pending row with no next_attempt_at is paused: its webhook is disabled.
// A row with a negative claimed_until (no claim) was retried by the user
// (retry-now): it is claimed even while its endpoint's circuit is open, and
// that resets the circuit (see ClaimOptions.Hold).

// maxStoredAttempts bounds the attempt log of one delivery (the oldest are
// dropped): the retry schedule makes about a dozen in three days.
const maxStoredAttempts = 50

const deliveryCols = `id, webhook_id, event_id, event_type, status, attempts, next_attempt_at, created_at`

func scanDelivery(r rowScanner) (*wabsync.Delivery, error) {
	var d wabsync.Delivery
	var attempts string
	var next sql.NullInt64
	var created int64
	if err := r.Scan(&d.ID, &d.WebhookID, &d.EventID, &d.EventType, &d.Status, &attempts, &next, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(attempts), &d.Attempts); err != nil {
		return nil, err
	}
	if d.Attempts == nil {
		d.Attempts = []wabsync.DeliveryAttempt{}
	}
	if next.Valid {
		t := fromMicros(next.Int64)
		d.NextAttemptAt = &t
	}
	d.CreatedAt = fromMicros(created)
	return &d, nil
}

var errDeliveryNotFound = wabsync.NotFound("Delivery")

// GetDelivery returns delivery id of webhook webhookID.
func (db *DB) GetDelivery(ctx context.Context, webhookID, id string) (*wabsync.Delivery, error) {
	d, err := scanDelivery(db.queryRow(ctx, (`SELECT ` + deliveryCols + ` FROM deliveries WHERE id = ? AND webhook_id = ?`), id, webhookID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errDeliveryNotFound
	}
	return d, err
}

// ListDeliveries returns one page of the deliveries of a webhook, newest
// first, only those in status unless it is ""; the cursor is the last id of
// the previous page.
func (db *DB) ListDeliveries(ctx context.Context, webhookID, status string, p wabsync.Page) (wabsync.List[*wabsync.Delivery], error) {
	q := `SELECT ` + deliveryCols + ` FROM deliveries WHERE webhook_id = ?`
	args := []any{webhookID}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	if p.After != "" {
		q += ` AND id < ?`
		args = append(args, p.After)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, p.Limit+1)
	rows, err := db.query(ctx, (q), args...)
	if err != nil {
		return wabsync.List[*wabsync.Delivery]{}, err
	}
	defer rows.Close()
	items := []*wabsync.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return wabsync.List[*wabsync.Delivery]{}, err
		}
		items = append(items, d)
	}
	if err := rows.Err(); err != nil {
		return wabsync.List[*wabsync.Delivery]{}, err
	}
	return pageOf(items, p.Limit, func(d *wabsync.Delivery) string { return d.ID }), nil
}

// RetryDelivery makes delivery id of webhook webhookID pending and due now,
// whatever its status, and returns it. Unless a worker holds it (its attempt
// is under way), it is marked as retried by the user: it is claimed even if
// its endpoint is held back as down (the user's retry resets that, on
// whichever node holds it). The webhook must be enabled (CONFLICT
// otherwise). rem, when set, is remembered in the same transaction.
func (db *DB) RetryDelivery(ctx context.Context, webhookID, id string, rem *Remember) (*wabsync.Delivery, error) {
	var out *wabsync.Delivery
	err := db.Update(ctx, func(tx *Tx) error {
		var enabled int
		err := tx.QueryRow(`SELECT enabled FROM webhooks WHERE id = ?`, webhookID).Scan(&enabled)
		if errors.Is(err, sql.ErrNoRows) {
			return errWebhookNotFound
		}
		if err != nil {
			return err
		}
		if enabled != 1 {
			return wabsync.Errorf(wabsync.EConflict, "The webhook is disabled; enable it before retrying its deliveries.")
		}
		now := tx.db.Now()
		res, err := tx.Exec(`UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?,
				claimed_until = CASE WHEN claimed_until > ? THEN claimed_until ELSE -1 END
			WHERE id = ? AND webhook_id = ?`,
			micros(now), micros(now), micros(now), id, webhookID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errDeliveryNotFound
		}
		tx.dueDeliveries()
		d, err := scanDelivery(tx.QueryRow(`SELECT `+deliveryCols+` FROM deliveries WHERE id = ?`, id))
		if err != nil {
			return err
		}
		out = d
		return tx.remember(rem, d)
	})
	return out, err
}

// AddTestEvent stores a webhook.test event in the webhook's scope (its
// session, or global) with a single delivery: to that webhook only, not to
// every endpoint that would match, whatever its filter, and also when it is
// disabled (test deliveries are claimed regardless). rem, when set, is
// remembered in the same transaction.
func (db *DB) AddTestEvent(ctx context.Context, scope *string, webhookID string, rem *Remember) (*wabsync.Event, *wabsync.Delivery, error) {
	var ev *wabsync.Event
	var dl *wabsync.Delivery
	err := db.Update(ctx, func(tx *Tx) error {
		w, err := tx.getWebhook(scope, webhookID)
		if err != nil {
			return err
		}
		data, _ := json.Marshal(map[string]string{"webhook_id": w.ID, "message": "This is a test event from WabSync."})
		e, err := tx.insertEvent(w.SessionID, wabsync.EventWebhookTest, data)
		if err != nil {
			return err
		}
		now := e.CreatedAt
		d := &wabsync.Delivery{ID: wabsync.NewID("dlv"), WebhookID: w.ID, EventID: e.ID, EventType: e.Type,
			Status: wabsync.DeliveryPending, Attempts: []wabsync.DeliveryAttempt{}, NextAttemptAt: &now, CreatedAt: now}
		if _, err := tx.Exec(`INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)`, d.ID, d.WebhookID, d.EventID, d.EventType, micros(now), micros(now), micros(now)); err != nil {
			return err
		}
		tx.dueDeliveries()
		ev, dl = e, d
		return tx.remember(rem, d)
	})
	return ev, dl, err
}

// ClaimedDelivery is a delivery a worker holds, with all it needs to send
// it. Secrets must never be logged.
type ClaimedDelivery struct {
	ID           string
	WebhookID    string
	EventID      string
	EventType    string
	AttemptCount int
	CreatedAt    time.Time
	URL          string
	// Secrets sign the delivery: the current secret, then the previous one
	// while its grace period lasts.
	Secrets []string
	// Body is the event exactly as stored.
	Body []byte
	// ClaimedUntil is when the claim lapses and another worker may take it.
	ClaimedUntil time.Time
	// WebhookUpdatedAt is when the webhook was last changed (enabled, its
	// URL, ...), as the claim found it: a circuit opened by attempts made
	// before a change does not hold back the webhook after it.
	WebhookUpdatedAt time.Time
	// Retried is set when the user asked for this attempt (retry-now): it
	// was claimed even if its endpoint was held.
	Retried bool
}

// ClaimOptions bound a claim.
type ClaimOptions struct {
	// Limit is the most deliveries to claim.
	Limit int
	// Lease is how long the claim lasts.
	Lease time.Duration
	// MaxPerWebhook is the most deliveries of one webhook in one claim.
	MaxPerWebhook int
	// Room, when set, is the room left for webhooks the worker already holds
	// deliveries of (absent: MaxPerWebhook). Webhooks with no room are left
	// out of the claim, so that a slow endpoint's backlog does not crowd out
	// the other endpoints.
	Room map[string]int
	// Hold names webhooks whose endpoint is down (the worker's circuit
	// breaker is open) with the time of their next probe: their due
	// deliveries are not claimed but moved to that time (parked), in the
	// claim's transaction, so that a down endpoint costs one write per claim
	// rather than an attempt and a write per delivery, and its backlog does
	// not stay in the due set every claim reads. A hold ends, and the
	// webhook's deliveries are claimed as usual, when the webhook was
	// changed since the circuit opened (its updated_at is not the hold's:
	// re-enabled, a new URL) — a delivery retried by the user is claimed
	// whatever the hold. The worker learns it from the claimed deliveries
	// (WebhookUpdatedAt, Retried) and resets its circuit.
	Hold map[string]Hold
	// MinPark: a claim that finds nothing to claim and fewer than this many
	// deliveries to park writes nothing (a later claim parks them), unless
	// one of them has been due for longer than ParkAfter.
	MinPark int
	// ParkAfter bounds how long a held delivery stays due, not parked (and
	// its log shows a past next_attempt_at rather than the next probe);
	// zero: MinPark alone decides.
	ParkAfter time.Duration
}

// Hold is the circuit of a down endpoint, as a claim sees it.
type Hold struct {
	// Until is the next probe: due deliveries are parked until then.
	Until time.Time
	// WebhookUpdatedAt is the webhook's updated_at when the circuit's
	// attempts were claimed; a webhook changed since is not held (zero: held
	// whatever).
	WebhookUpdatedAt time.Time
}

// Claim is what one claim took.
type Claim struct {
	Deliveries []*ClaimedDelivery
	// Parked is how many due deliveries of held webhooks were moved to their
	// next probe.
	Parked int
	// More is set when the claim read as many due deliveries as it may: more
	// may be due.
	More bool
}

// skipLockedOf is the row-locking suffix of a claim that joins other tables
// but locks only the rows of alias (PostgreSQL; SQLite's single writer
// already serialises claims).
func (db *DB) skipLockedOf(alias string) string {
	if db.dialect == Postgres {
		return " FOR UPDATE OF " + alias + " SKIP LOCKED"
	}
	return ""
}

// ClaimDeliveries claims due deliveries of enabled webhooks (and test
// deliveries of any) at now, oldest due first, at most o.MaxPerWebhook (or
// o.Room) per webhook, and returns them. See ClaimDue.
func (db *DB) ClaimDeliveries(ctx context.Context, now time.Time, o ClaimOptions) ([]*ClaimedDelivery, error) {
	c, err := db.ClaimDue(ctx, now, o)
	return c.Deliveries, err
}

// dueSet is what a claim found due: the deliveries to claim and, by time,
// those to park.
type dueSet struct {
	claim  []any
	park   map[time.Time][]any
	parked int
	// retried are the ids to claim that the user retried.
	retried map[string]bool
	// full is set when the read returned as many rows as it asked for.
	full bool
}

// findDue reads the due deliveries a claim at now takes or parks, through
// query (the read pool, or the claim's transaction).
func (db *DB) findDue(query func(q string, args ...any) (*sql.Rows, error), now time.Time, o ClaimOptions, lock string) (dueSet, error) {
	q := `SELECT d.id, d.webhook_id, d.next_attempt_at, d.claimed_until, w.updated_at
		FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND d.claimed_until <= ?
			AND (w.enabled = 1 OR d.event_type = 'webhook.test')`
	args := []any{micros(now), micros(now)}
	var full []string
	for id, room := range o.Room {
		if _, held := o.Hold[id]; room <= 0 && !held {
			full = append(full, id)
		}
	}
	if len(full) > 0 {
		// A full webhook is left out, but for deliveries the user retried.
		q += ` AND (d.claimed_until < 0 OR d.webhook_id NOT IN (?` + strings.Repeat(`, ?`, len(full)-1) + `))`
		for _, id := range full {
			args = append(args, id)
		}
	}
	// Parked rows are read too: room for them, up to a few batches.
	scan := o.Limit
	if len(o.Hold) > 0 {
		scan = 4 * o.Limit
	}
	q += ` ORDER BY d.next_attempt_at LIMIT ?` + lock
	args = append(args, scan)
	rows, err := query(q, args...)
	if err != nil {
		return dueSet{}, err
	}
	defer rows.Close()
	var s dueSet
	n := 0
	taken := map[string]int{}
	oldestParked := int64(-1)
	for rows.Next() {
		var id, wh string
		var due, claimedUntil, updated int64
		if err := rows.Scan(&id, &wh, &due, &claimedUntil, &updated); err != nil {
			return dueSet{}, err
		}
		n++
		retried := claimedUntil < 0
		if h, held := o.Hold[wh]; held && !retried && (h.WebhookUpdatedAt.IsZero() || micros(h.WebhookUpdatedAt) == updated) {
			if s.park == nil {
				s.park = map[time.Time][]any{}
			}
			s.park[h.Until] = append(s.park[h.Until], id)
			s.parked++
			if oldestParked < 0 {
				oldestParked = due // rows come oldest due first
			}
			continue
		}
		room, ok := o.Room[wh]
		if !ok {
			room = o.MaxPerWebhook
		}
		if (taken[wh] >= room && !retried) || len(s.claim) >= o.Limit {
			continue
		}
		taken[wh]++
		s.claim = append(s.claim, id)
		if retried {
			if s.retried == nil {
				s.retried = map[string]bool{}
			}
			s.retried[id] = true
		}
	}
	if err := rows.Err(); err != nil {
		return dueSet{}, err
	}
	s.full = n >= scan
	overdue := o.ParkAfter > 0 && oldestParked >= 0 && oldestParked <= micros(now.Add(-o.ParkAfter))
	if len(s.claim) == 0 && s.parked < max(o.MinPark, 1) && !overdue {
		s.park, s.parked = nil, 0
	}
	return s, nil
}

// ClaimDue claims due deliveries of enabled webhooks (and test deliveries
// of any) at now, oldest due first, at most o.MaxPerWebhook (or o.Room) per
// webhook, and parks the due deliveries of o.Hold's webhooks. Several
// workers and nodes may claim at once: on PostgreSQL rows another claim
// holds are skipped, not waited for. When a read finds nothing to do, no
// write is made (an idle or held queue does not occupy the single writer).
func (db *DB) ClaimDue(ctx context.Context, now time.Time, o ClaimOptions) (Claim, error) {
	if o.Limit <= 0 {
		return Claim{}, nil
	}
	if o.MaxPerWebhook <= 0 {
		o.MaxPerWebhook = o.Limit
	}
	// A look first, outside the writer.
	look, err := db.findDue(func(q string, args ...any) (*sql.Rows, error) {
		return db.read.QueryContext(ctx, db.rebind(q), args...)
	}, now, o, "")
	if err != nil {
		return Claim{}, err
	}
	if len(look.claim) == 0 && look.parked == 0 {
		return Claim{}, nil
	}
	var out Claim
	err = db.Update(ctx, func(tx *Tx) error {
		out = Claim{}
		s, err := tx.db.findDue(tx.Query, now, o, tx.db.skipLockedOf("d"))
		if err != nil {
			return err
		}
		out.More = s.full
		for until, ids := range s.park {
			in := `(?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
			if _, err := tx.Exec(`UPDATE deliveries SET next_attempt_at = ?, updated_at = ? WHERE id IN `+in,
				append([]any{micros(until), micros(now)}, ids...)...); err != nil {
				return err
			}
		}
		out.Parked = s.parked
		if len(s.claim) == 0 {
			return nil
		}
		ids := s.claim
		until := now.Add(o.Lease)
		in := `(?` + strings.Repeat(`, ?`, len(ids)-1) + `)`
		if _, err := tx.Exec(`UPDATE deliveries SET claimed_until = ? WHERE id IN `+in, append([]any{micros(until)}, ids...)...); err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.attempt_count, d.created_at,
				w.url, w.secret, w.old_secret, w.old_secret_until, w.updated_at, e.body
			FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id
			WHERE d.id IN `+in+` ORDER BY d.next_attempt_at`, ids...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c := &ClaimedDelivery{ClaimedUntil: until}
			var created, oldUntil, updated int64
			var secret, old, body string
			if err := rows.Scan(&c.ID, &c.WebhookID, &c.EventID, &c.EventType, &c.AttemptCount, &created,
				&c.URL, &secret, &old, &oldUntil, &updated, &body); err != nil {
				return err
			}
			c.CreatedAt, c.WebhookUpdatedAt = fromMicros(created), fromMicros(updated)
			c.Retried = s.retried[c.ID]
			c.Secrets = secretsAt(secret, old, oldUntil, now)
			c.Body = []byte(body)
			out.Deliveries = append(out.Deliveries, c)
		}
		return rows.Err()
	})
	if err != nil {
		return Claim{}, err
	}
	return out, nil
}

// AttemptResult is the outcome of one attempt at a claimed delivery.
type AttemptResult struct {
	Attempt wabsync.DeliveryAttempt
	// Succeeded is true for a 2xx answer.
	Succeeded bool
	// NextAttemptAt is when to try again after a failure; zero gives up and
	// marks the delivery failed.
	NextAttemptAt time.Time
	// DisableAfter disables the webhook when this failure finds it failing
	// for at least this long (zero: never).
	DisableAfter time.Duration
}

// RecordOutcome says what RecordAttempt changed besides the delivery.
type RecordOutcome struct {
	// Disabled is set when the webhook was disabled by this failure; a
	// webhook.disabled event went to the other endpoints.
	Disabled bool
	// Released is how many waiting deliveries of the webhook a success
	// after failures made due at once.
	Released int64
}

// RecordAttempt appends an attempt to delivery c's log and ends the claim,
// in one transaction: a success marks it succeeded and, when the webhook was
// failing, clears that and makes its waiting deliveries due now (so that a
// recovered endpoint drains its backlog at once rather than at each
// delivery's backoff); a failure schedules the next attempt (or marks the
// delivery failed) and records since when the webhook is failing —
// disabling it, with a webhook.disabled event to the other endpoints, once
// that is longer ago than r.DisableAfter.
func (db *DB) RecordAttempt(ctx context.Context, c *ClaimedDelivery, r AttemptResult) (RecordOutcome, error) {
	var out RecordOutcome
	err := db.Update(ctx, func(tx *Tx) error {
		out = RecordOutcome{}
		now := tx.db.Now()
		// Lock order: the webhook, then its deliveries (as UpdateWebhook).
		if r.Succeeded {
			res, err := tx.Exec(`UPDATE webhooks SET failing_since = 0 WHERE id = ? AND failing_since <> 0`, c.WebhookID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				res, err := tx.Exec(`UPDATE deliveries SET next_attempt_at = ?, updated_at = ?
					WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at > ? AND id <> ?`,
					micros(now), micros(now), c.WebhookID, micros(now), c.ID)
				if err != nil {
					return err
				}
				out.Released, _ = res.RowsAffected()
			}
			return tx.appendAttempt(c.ID, c.AttemptCount, r.Attempt, wabsync.DeliverySucceeded, nil, now)
		}
		var failingSince int64
		err := tx.QueryRow(`SELECT failing_since FROM webhooks WHERE id = ?`+tx.db.forUpdate(), c.WebhookID).Scan(&failingSince)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // deleted meanwhile, with its deliveries
		}
		if err != nil {
			return err
		}
		if failingSince == 0 {
			failingSince = micros(r.Attempt.At)
			if _, err := tx.Exec(`UPDATE webhooks SET failing_since = ? WHERE id = ?`, failingSince, c.WebhookID); err != nil {
				return err
			}
		}
		status, next := wabsync.DeliveryPending, &r.NextAttemptAt
		if r.NextAttemptAt.IsZero() {
			status, next = wabsync.DeliveryFailed, nil
		}
		if err := tx.appendAttempt(c.ID, c.AttemptCount, r.Attempt, status, next, now); err != nil {
			return err
		}
		since := fromMicros(failingSince)
		if r.DisableAfter <= 0 || now.Sub(since) < r.DisableAfter {
			return nil
		}
		w, err := scanWebhook(tx.QueryRow(`SELECT `+webhookCols+` FROM webhooks WHERE id = ?`, c.WebhookID))
		if err != nil || !w.Enabled {
			return err
		}
		w.Enabled, w.UpdatedAt = false, now
		w.DisabledReason = fmt.Sprintf("Every delivery failed since %s (last: %s).", since.Format(time.RFC3339), r.Attempt.Error)
		if _, err := tx.Exec(`UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?`,
			w.DisabledReason, micros(now), c.WebhookID); err != nil {
			return err
		}
		if err := tx.pauseDeliveries(c.WebhookID, now); err != nil {
			return err
		}
		// The event's data is the webhook as it is now (without its secret);
		// it goes to the other endpoints, this one being disabled.
		if _, err := tx.AddEvent(w.SessionID, wabsync.EventWebhookDisabled, w); err != nil {
			return err
		}
		out.Disabled = true
		return nil
	})
	return out, err
}

// appendAttempt adds a to the log of delivery id and sets its status and
// next attempt, ending any claim. A delivery that already succeeded (a
// duplicate attempt after a lapsed claim) keeps its status.
func (tx *Tx) appendAttempt(id string, count int, a wabsync.DeliveryAttempt, status string, next *time.Time, now time.Time) error {
	var nextV any
	if next != nil {
		nextV = micros(*next)
	}
	if count < maxStoredAttempts-1 {
		// The common case in one statement: append to the JSON text. The
		// count is as claimed; a longer log takes the path below.
		enc, err := json.Marshal(a)
		if err != nil {
			return err
		}
		res, err := tx.Exec(`UPDATE deliveries SET
			attempts = CASE WHEN attempts = '[]' THEN '[' || CAST(? AS TEXT) || ']'
				ELSE substr(attempts, 1, length(attempts) - 1) || ',' || CAST(? AS TEXT) || ']' END,
			status = CASE WHEN status = 'succeeded' THEN status ELSE CAST(? AS TEXT) END,
			next_attempt_at = CASE WHEN status = 'succeeded' THEN NULL ELSE CAST(? AS BIGINT) END,
			attempt_count = attempt_count + 1, claimed_until = 0, updated_at = ?
			WHERE id = ? AND attempt_count < ?`, string(enc), string(enc), status, nextV, micros(now), id, maxStoredAttempts-1)
		if err != nil {
			return err
		}
		// No row: deleted with its webhook meanwhile, or its log grew since
		// the claim (then the path below bounds it).
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
	}
	var cur, attempts string
	err := tx.QueryRow(`SELECT status, attempts FROM deliveries WHERE id = ?`+tx.db.forUpdate(), id).Scan(&cur, &attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // deleted with its webhook meanwhile
	}
	if err != nil {
		return err
	}
	log, err := appendAttemptJSON(attempts, a)
	if err != nil {
		return err
	}
	if cur == wabsync.DeliverySucceeded {
		status, nextV = cur, nil
	}
	_, err = tx.Exec(`UPDATE deliveries SET status = ?, attempts = ?, attempt_count = attempt_count + 1, next_attempt_at = ?,
		claimed_until = 0, updated_at = ? WHERE id = ?`, status, log, nextV, micros(now), id)
	return err
}

// appendAttemptJSON appends a to the JSON array log without decoding it
// when it can, keeping at most maxStoredAttempts.
func appendAttemptJSON(log string, a wabsync.DeliveryAttempt) (string, error) {
	enc, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	log = strings.TrimSpace(log)
	if log == "" || log == "[]" {
		return "[" + string(enc) + "]", nil
	}
	if strings.Count(log, `{"at":`) < maxStoredAttempts {
		return log[:len(log)-1] + "," + string(enc) + "]", nil
	}
	var all []json.RawMessage
	if err := json.Unmarshal([]byte(log), &all); err != nil {
		return "", err
	}
	all = append(all[len(all)-maxStoredAttempts+1:], enc)
	b, err := json.Marshal(all)
	return string(b), err
}

// ReleaseClaims ends the claims on deliveries that a worker holds but will
// not attempt (it is shutting down), so that another takes them at once
// rather than when the lease lapses.
func (db *DB) ReleaseClaims(ctx context.Context, ids []string) error {
	return db.endClaims(ctx, ids, ``, nil)
}

// ParkClaims ends the claims on deliveries that a worker holds but will not
// attempt because their endpoint is down, and makes them due at until (its
// next probe), in one write.
func (db *DB) ParkClaims(ctx context.Context, ids []string, until time.Time) error {
	return db.endClaims(ctx, ids, `, next_attempt_at = ?`, []any{micros(until)})
}

// endClaims ends the claims on the pending deliveries ids, setting set (a
// list of ", column = ?" with its args) too.
func (db *DB) endClaims(ctx context.Context, ids []string, set string, setArgs []any) error {
	if len(ids) == 0 {
		return nil
	}
	args := append([]any(nil), setArgs...)
	for _, id := range ids {
		args = append(args, id)
	}
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.Exec(`UPDATE deliveries SET claimed_until = 0`+set+` WHERE status = 'pending' AND id IN (?`+strings.Repeat(`, ?`, len(ids)-1)+`)`, args...)
		return err
	})
}

// Remember asks a change to store the response of its request under an
// Idempotency-Key in the same transaction, so that the record exists if and
// only if the change does. Render renders the response from the change's
// result (the webhook or delivery it returns).
type Remember struct {
	Scope, Key, RequestHash string
	Render                  func(result any) (status int, body []byte, err error)
}

// remember stores rem's response for result in tx; nil does nothing.
func (tx *Tx) remember(rem *Remember, result any) error {
	if rem == nil {
		return nil
	}
	status, body, err := rem.Render(result)
	if err != nil {
		return err
	}
	return tx.PutIdempotent(rem.Scope, rem.Key, rem.RequestHash, status, body)
}
