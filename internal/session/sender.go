package session

import (
	"context"
	"errors"
	"io"
	"time"

	"golang.org/x/time/rate"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

// BlobOpener opens stored media by key.
type BlobOpener interface {
	OpenBlob(key string) (io.ReadCloser, error)
}

// sender is a runner's outbox drain: a goroutine that runs only while the
// session has queued messages, pacing them with a token bucket.
type sender struct {
	running bool
	again   bool
	done    chan struct{}
	pace    pacer // used only by the sender goroutine
}

// wait blocks until the sender goroutine (if any) has finished.
func (r *runner) waitSender() {
	r.mu.Lock()
	done := r.send.done
	r.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Wake tells the session's sender that messages are queued.
func (m *Manager) Wake(sessionID string) {
	if r := m.runner(sessionID); r != nil {
		r.mu.Lock()
		r.wakeLocked()
		r.mu.Unlock()
	}
}

// wakeLocked starts the sender if the session is connected and idle.
func (r *runner) wakeLocked() {
	if r.stopped || r.status != wabsync.StatusConnected {
		return
	}
	if r.send.running {
		r.send.again = true
		return
	}
	r.send.running = true
	r.send.done = make(chan struct{})
	r.m.wg.Add(1)
	go r.sendLoop(r.send.done)
}

func (r *runner) sendLoop(done chan struct{}) {
	defer r.m.wg.Done()
	defer close(done)
	for {
		n, retry := r.m.sendQueued(r)
		r.mu.Lock()
		if !r.stopped && r.status == wabsync.StatusConnected && (n > 0 || r.send.again) && !retry {
			r.send.again = false
			r.mu.Unlock()
			continue
		}
		r.send.running = false
		if retry && !r.stopped {
			// A transient failure: try again a little later.
			r.m.wg.Add(1)
			time.AfterFunc(2*time.Second, func() {
				defer r.m.wg.Done()
				r.mu.Lock()
				r.wakeLocked()
				r.mu.Unlock()
			})
		}
		r.mu.Unlock()
		return
	}
}

// pace waits for a send token; it returns false if the runner stopped.
func (r *runner) pace() bool { return r.takeTokens(1) == 1 }

// takeTokens waits until at least one send token is available and takes up
// to max of them; it returns how many it took, or 0 if the runner stopped
// meanwhile.
func (r *runner) takeTokens(max int) int {
	perSec, burst := r.m.opts.SendRate, r.m.opts.SendBurst
	r.mu.Lock()
	if r.cfg.SendRate > 0 {
		perSec = r.cfg.SendRate
	}
	if r.cfg.SendBurst > 0 {
		burst = r.cfg.SendBurst
	}
	r.mu.Unlock()
	n, wait := r.send.pace.take(time.Now(), perSec, burst, max)
	if wait > 0 {
		time.Sleep(wait)
		r.mu.Lock()
		ok := !r.stopped && r.status == wabsync.StatusConnected
		r.mu.Unlock()
		if !ok {
			return 0
		}
	}
	return n
}

// pacer is a session's send pace: a token bucket (golang.org/x/time/rate)
// filling at perSec tokens a second up to burst, full at the start.
type pacer struct{ lim *rate.Limiter }

// take takes tokens at now, under the session's current settings (a change
// applies from now on). With a token or more in the bucket it takes up to
// max of them and returns how many; with none it reserves one and returns 1
// and how long to wait before sending.
func (p *pacer) take(now time.Time, perSec float64, burst, max int) (int, time.Duration) {
	limit := rate.Limit(perSec)
	switch {
	case p.lim == nil:
		p.lim = rate.NewLimiter(limit, burst)
	default:
		if p.lim.Limit() != limit {
			p.lim.SetLimitAt(now, limit)
		}
		if p.lim.Burst() != burst {
			p.lim.SetBurstAt(now, burst)
		}
	}
	if n := min(max, int(p.lim.TokensAt(now))); n >= 1 {
		p.lim.AllowN(now, n)
		return n, 0
	}
	return 1, p.lim.ReserveN(now, 1).DelayFrom(now)
}

// permanent reports whether a send error means the message cannot go.
func permanent(err error) (*wabsync.EngineError, bool) {
	var ee *wabsync.EngineError
	if errors.As(err, &ee) && (ee.Permanent || ee.Code == wabsync.MsgErrNotOnWhatsApp || ee.Code == wabsync.MsgErrReachOutLocked ||
		ee.Code == wabsync.MsgErrMediaUpload || ee.Code == wabsync.MsgErrTargetNotFound) {
		return ee, true
	}
	return nil, false
}

// sendBatches sends a batch through an engine that takes several messages
// at once: as many as the pace allows go in one call, and their outcomes are
// recorded in one transaction. It returns how many it handled and whether
// to retry later.
func (m *Manager) sendBatches(ctx context.Context, r *runner, bs wabsync.BatchSender, batch []*wabsync.Message, began time.Time, g *outboxGate, gen uint64) (int, bool) {
	done := 0
	for done < len(batch) {
		n := r.takeTokens(len(batch) - done)
		if n == 0 {
			return done, false
		}
		r.mu.Lock()
		ok := !r.stopped && r.status == wabsync.StatusConnected
		r.mu.Unlock()
		if !ok {
			return done, false
		}
		release, _ := g.hold(context.Background())
		if g.gen.Load() != gen {
			release()
			r.readOutboxAgain()
			return done, false
		}
		handled, failed := m.sendChunk(ctx, r, bs, batch[done:done+n], began)
		release()
		done += handled
		if failed {
			return done, true
		}
	}
	return done, false
}

// sendChunk sends chunk in one call and records the outcomes in one
// transaction. It returns how many it handled and whether to retry later.
func (m *Manager) sendChunk(ctx context.Context, r *runner, bs wabsync.BatchSender, chunk []*wabsync.Message, began time.Time) (int, bool) {
	n := len(chunk)
	outs := make([]*wabsync.OutgoingMessage, 0, n)
	idx := make([]int, 0, n)
	prepErr := make([]*wabsync.MessageError, n)
	for i, msg := range chunk {
		out, ferr := m.prepare(ctx, r, msg)
		if ferr != nil {
			prepErr[i] = ferr
			continue
		}
		outs = append(outs, out)
		idx = append(idx, i)
	}
	var res []wabsync.SendResult
	var errs []error
	if len(outs) > 0 {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		res, errs = bs.SendBatch(sctx, outs)
		cancel()
	}
	sendErr := make([]error, n)
	sendRes := make([]wabsync.SendResult, n)
	for j, i := range idx {
		sendErr[i], sendRes[i] = errs[j], res[j]
	}
	handled := n
	ids := make([]string, len(chunk))
	for i, msg := range chunk {
		ids[i] = msg.ID
	}
	err := m.db.Update(ctx, func(tx *store.Tx) error {
		handled = n
		if err := tx.PrefetchMessages(r.id, ids, nil); err != nil {
			return err
		}
		for i, msg := range chunk {
			if prepErr[i] != nil {
				if err := tx.MarkFailed(r.id, msg.ID, prepErr[i].Code, prepErr[i].Message, began); err != nil {
					return err
				}
				continue
			}
			if sendErr[i] != nil {
				if ee, ok := permanent(sendErr[i]); ok {
					if err := tx.MarkFailed(r.id, msg.ID, ee.Code, ee.Message, began); err != nil {
						return err
					}
					continue
				}
				// A transient failure: this one and the rest go again later, in order.
				handled = i
				return nil
			}
			if err := tx.MarkSent(r.id, msg.ID, sendRes[i].Timestamp, began); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.logger.Error("recording sent messages", "session_id", r.id, "err", err)
		return 0, true
	}
	if handled < n {
		m.logger.Warn("send failed; will retry", "session_id", r.id, "message_id", chunk[handled].ID, "err", sendErr[handled])
		return handled, true
	}
	return n, false
}

// outboxBatch is how many queued messages are taken at a time. Marking them
// sending, and recording a paced chunk of them sent, are each one change of
// the store, which every other write waits behind while it runs: a few dozen
// keep it to a few milliseconds.
const outboxBatch = 32

// sendQueued sends what the session has queued, in order. It returns how
// many messages it handled, and whether to retry later (a transient error).
func (m *Manager) sendQueued(r *runner) (int, bool) {
	ctx := store.Background(r.fenced(context.Background()))
	// A revoke of a queued message after this read makes the sender read
	// again before it sends anything more (see CancelQueued).
	g := m.gate(r.id)
	gen := g.gen.Load()
	batch, err := m.db.Outbox(ctx, r.id, outboxBatch)
	if err != nil {
		m.logger.Error("reading the outbox", "session_id", r.id, "err", err)
		return 0, true
	}
	if len(batch) == 0 {
		return 0, false
	}
	// Nothing is written before the network call: each message's WhatsApp
	// id was fixed when it was accepted, so a resend after a crash reuses
	// it and the network de-duplicates by it. "sending" goes into the
	// history with the outcome, at the time the batch was taken.
	began := m.db.Now()
	r.mu.Lock()
	bs, batching := r.engine.(wabsync.BatchSender)
	r.mu.Unlock()
	if batching {
		return m.sendBatches(ctx, r, bs, batch, began, g, gen)
	}
	for i, msg := range batch {
		if !r.pace() {
			return i, false
		}
		r.mu.Lock()
		eng, ok := r.engine, !r.stopped && r.status == wabsync.StatusConnected
		r.mu.Unlock()
		if !ok {
			return i, false
		}
		release, _ := g.hold(context.Background())
		if g.gen.Load() != gen {
			release()
			r.readOutboxAgain()
			return i, false
		}
		stop := m.sendOne(ctx, r, eng, msg, began)
		release()
		if stop {
			return i, true
		}
	}
	return len(batch), false
}

// readOutboxAgain makes the send loop read the outbox again, also when it
// handled nothing of the batch it had.
func (r *runner) readOutboxAgain() {
	r.mu.Lock()
	r.send.again = true
	r.mu.Unlock()
}

// sendOne sends one message and records its outcome. It returns true when
// the sender should stop and retry later (a transient failure).
func (m *Manager) sendOne(ctx context.Context, r *runner, eng wabsync.Engine, msg *wabsync.Message, began time.Time) bool {
	out, ferr := m.prepare(ctx, r, msg)
	if ferr != nil {
		return m.db.MarkFailed(ctx, r.id, msg.ID, ferr.Code, ferr.Message, began) != nil
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	res, err := eng.Send(sctx, out)
	cancel()
	if err != nil {
		if ee, ok := permanent(err); ok {
			return m.db.MarkFailed(ctx, r.id, msg.ID, ee.Code, ee.Message, began) != nil
		}
		m.logger.Warn("send failed; will retry", "session_id", r.id, "message_id", msg.ID, "err", err)
		return true
	}
	if err := m.db.MarkSent(ctx, r.id, msg.ID, res.Timestamp, began); err != nil {
		m.logger.Error("recording a sent message", "session_id", r.id, "message_id", msg.ID, "err", err)
		return true
	}
	return false
}

// prepare checks that msg may go from the account the session is linked
// to now, and builds its engine's form (outgoing).
func (m *Manager) prepare(ctx context.Context, r *runner, msg *wabsync.Message) (*wabsync.OutgoingMessage, *wabsync.MessageError) {
	if e := r.accountChanged(msg); e != nil {
		return nil, e
	}
	return m.outgoing(ctx, msg)
}

// accountChanged refuses a message accepted while the session was linked
// to another account than the one it is linked to now (a logout and a new
// link in between): it must not go out from a number it was not written
// for. A message accepted while no account was linked goes from the next.
func (r *runner) accountChanged(msg *wabsync.Message) *wabsync.MessageError {
	r.mu.Lock()
	phone := r.phone
	r.mu.Unlock()
	if msg.From == "" || msg.From == phone {
		return nil
	}
	return &wabsync.MessageError{Code: wabsync.MsgErrLoggedOut,
		Message: "The session was logged out and linked to another account after this message was accepted for " + msg.From + "; it is not sent from the new one."}
}

// outgoing builds the engine's form of a stored message, resolving the
// messages it refers to.
func (m *Manager) outgoing(ctx context.Context, msg *wabsync.Message) (*wabsync.OutgoingMessage, *wabsync.MessageError) {
	out := &wabsync.OutgoingMessage{WAID: msg.WAID, To: msg.ToJID, Kind: msg.Kind, Text: msg.Text, Caption: msg.Caption,
		LinkPreview: msg.LinkPreview, Mentions: msg.Mentions, Location: msg.Location, Contacts: msg.Contacts}
	target := func(id string) (*wabsync.Message, *wabsync.MessageError) {
		t, err := m.db.GetMessage(ctx, msg.SessionID, id)
		if err != nil {
			return nil, &wabsync.MessageError{Code: wabsync.MsgErrTargetNotFound, Message: "The message it refers to (" + id + ") is gone."}
		}
		return t, nil
	}
	if msg.ReplyTo != "" {
		t, e := target(msg.ReplyTo)
		if e != nil {
			return nil, e
		}
		out.ReplyTo = &wabsync.QuotedMessage{WAID: t.WAID, Sender: t.FromJID, FromMe: t.Direction == wabsync.DirectionOut, Text: t.Text}
	}
	if msg.Reaction != nil {
		t, e := target(msg.Reaction.MessageID)
		if e != nil {
			return nil, e
		}
		if t.Revoked {
			// Revoked after the reaction was accepted: WhatsApp shows no
			// reaction on a revoked message, so none is sent.
			return nil, &wabsync.MessageError{Code: wabsync.MsgErrTargetRevoked, Message: "The message it reacts to (" + t.ID + ") was revoked."}
		}
		out.Reaction = &wabsync.OutgoingReaction{Target: wabsync.MessageTarget{WAID: t.WAID, Sender: t.FromJID, FromMe: t.Direction == wabsync.DirectionOut},
			Emoji: msg.Reaction.Emoji}
	}
	if msg.Media != nil {
		if msg.Media.BlobKey == "" || m.opts.Blobs == nil {
			return nil, &wabsync.MessageError{Code: wabsync.MsgErrMediaMissing, Message: "The file of this message is not stored."}
		}
		key, blobs := msg.Media.BlobKey, m.opts.Blobs
		out.Media = &wabsync.OutgoingMedia{MimeType: msg.Media.MimeType, Filename: msg.Media.Filename, Size: msg.Media.Size,
			SHA256: msg.Media.SHA256, BlobKey: key, Open: func() (io.ReadCloser, error) { return blobs.OpenBlob(key) }}
	}
	return out, nil
}
