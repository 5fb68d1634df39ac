package store

import (
	"sync/atomic"
	"time"
)

// TimingBuckets are the upper bounds, in seconds, of the writer's timing
// histograms (WriterTimings).
var TimingBuckets = [...]float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1}

// histogram counts durations into TimingBuckets (plus one for the rest).
// The writer goroutines observe; metrics read. Both lock-free.
type histogram struct {
	counts [len(TimingBuckets) + 1]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(TimingBuckets) && s > TimingBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Histogram is a snapshot: Counts[i] observations fell at or under
// TimingBuckets[i] and over the bucket before (the last one: over all).
type Histogram struct {
	Counts []uint64
	Sum    time.Duration
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Counts: make([]uint64, len(h.counts)), Sum: time.Duration(h.sum.Load())}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	return out
}

// WriterTimings are where a change's time goes in the writer.
type WriterTimings struct {
	// Wait is how long each request's change (not background work) waited
	// before its batch began.
	Wait Histogram
	// Commit is how long each batch's commit took (on SQLite without the
	// fsync, which Sync counts).
	Commit Histogram
	// Sync is how long each fsync of SQLite's write-ahead log took (one
	// covers every commit before it; empty on PostgreSQL).
	Sync Histogram
}

// WriterTimings returns the writer's timing histograms.
func (db *DB) WriterTimings() WriterTimings {
	t := WriterTimings{Wait: db.writer.wait.snapshot(), Commit: db.writer.commitTime.snapshot()}
	if db.syncs != nil {
		t.Sync = db.syncs.times.snapshot()
	} else {
		t.Sync = (&histogram{}).snapshot()
	}
	return t
}
