package session

import (
	"testing"
	"time"
)

// TestPacer drives the send pace on a made-up clock: WABSYNC_SEND_BURST
// messages go at once, then WABSYNC_SEND_RATE a second, and a session's own
// settings apply from the moment they change.
func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	take := func(t *testing.T, p *pacer, at time.Time, perSec float64, burst, max, wantN int, wantWait time.Duration) {
		t.Helper()
		if n, wait := p.take(at, perSec, burst, max); n != wantN || wait != wantWait {
			t.Errorf("take at +%v = %d, %v; want %d, %v", at.Sub(t0), n, wait, wantN, wantWait)
		}
	}

	t.Run("FullAtStartThenPaced", func(t *testing.T) {
		var p pacer
		take(t, &p, t0, 20, 20, 32, 20, 0)                  // the whole burst, not more than it
		take(t, &p, t0, 20, 20, 32, 1, 50*time.Millisecond) // empty: one token, 1/20 s away
		take(t, &p, t0.Add(50*time.Millisecond), 20, 20, 32, 1, 50*time.Millisecond)
		take(t, &p, t0.Add(time.Hour), 20, 20, 32, 20, 0) // refilled to the burst, no further
		take(t, &p, t0.Add(time.Hour), 20, 20, 1, 1, 50*time.Millisecond)
	})

	t.Run("AtMostMax", func(t *testing.T) {
		var p pacer
		take(t, &p, t0, 20, 20, 5, 5, 0)
		take(t, &p, t0, 20, 20, 32, 15, 0)
	})

	t.Run("RateOverTime", func(t *testing.T) {
		// Taking as fast as the pacer lets, for 10 s at 20/s after a burst of 20.
		var p pacer
		sent := 0
		for now := t0; now.Before(t0.Add(10 * time.Second)); {
			n, wait := p.take(now, 20, 20, 32)
			now = now.Add(wait)
			sent += n
		}
		if sent != 20+200 {
			t.Errorf("sent %d in 10 s, want 220", sent)
		}
	})

	t.Run("SettingsChange", func(t *testing.T) {
		var p pacer
		take(t, &p, t0, 20, 20, 32, 20, 0)
		take(t, &p, t0, 100, 20, 32, 1, 10*time.Millisecond)                // a faster rate: a shorter wait
		take(t, &p, t0.Add(time.Hour), 100, 5, 32, 5, 0)                    // a smaller burst caps the bucket
		take(t, &p, t0.Add(time.Hour), 100, 50, 32, 1, 10*time.Millisecond) // a larger one fills over time
	})
}
