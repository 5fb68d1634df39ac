package httpapi

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/wabsync/wabsync/internal/ratelimit"
)

// TestAuthGateForgetsExpiredAddresses: the refused addresses stay bounded:
// once their windows have passed, they are swept when the map is large.
func TestAuthGateForgetsExpiredAddresses(t *testing.T) {
	lim, err := ratelimit.New(ratelimit.Config{Limit: 1, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g := newAuthGate(lim)
	fail := func(ip string) error {
		r := httptest.NewRequest("GET", "/", nil)
		return g.fail(httptest.NewRecorder(), r, ip, nil)
	}
	for i := range authGateSweep {
		ip := "10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256)
		_ = fail(ip) // within the limit
		if fail(ip) == nil {
			t.Fatalf("%s: the second failure was not refused (limit 1)", ip)
		}
	}
	if err := g.check(httptest.NewRecorder(), "10.0.0.1"); err == nil {
		t.Fatal("a refused address passed the check")
	}
	time.Sleep(1100 * time.Millisecond) // every window has passed
	_ = fail("192.0.2.1")
	if fail("192.0.2.1") == nil {
		t.Fatal("the new address was not refused")
	}
	g.mu.Lock()
	n := len(g.blocked)
	g.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d addresses remembered after the sweep, want 1", n)
	}
	if err := g.check(httptest.NewRecorder(), "10.0.0.1"); err != nil {
		t.Fatalf("an address whose window passed is still refused: %v", err)
	}
}
