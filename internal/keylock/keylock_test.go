package keylock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync/internal/keylock"
)

// TestOneHolderPerKey: callers of one key take turns, other keys are free,
// and the map is empty once nobody holds or waits.
func TestOneHolderPerKey(t *testing.T) {
	var l keylock.Locks
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside, most := 0, 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := l.Lock(context.Background(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	other, err := l.Lock(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	other()
	wg.Wait()
	if most != 1 {
		t.Fatalf("%d callers held key a at once", most)
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys left", n)
	}
}

// TestWaitEndsWithContext: a caller stops waiting when its context ends,
// and leaves nothing behind.
func TestWaitEndsWithContext(t *testing.T) {
	var l keylock.Locks
	unlock, err := l.Lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Lock(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with an ended context = %v", err)
	}
	unlock()
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys left", n)
	}
}
