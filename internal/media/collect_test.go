package media_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wabsync/wabsync/internal/media"
)

// age sets the modification time of the blob key in dir to d ago.
func age(tb testing.TB, dir, key string, d time.Duration) {
	tb.Helper()
	t := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(dir, key[0:2], key[2:4], key), t, t); err != nil {
		tb.Fatal(err)
	}
}

func exists(s *media.Store, key string) bool {
	_, err := s.Stat(key)
	return err == nil
}

// refs is a ReferencedFunc over a fixed set.
func refs(keys ...string) media.ReferencedFunc {
	return func(_ context.Context, asked []string) (map[string]bool, error) {
		out := map[string]bool{}
		for _, a := range asked {
			for _, k := range keys {
				if a == k {
					out[a] = true
				}
			}
		}
		return out, nil
	}
}

func TestDiscard(t *testing.T) {
	t.Run("NewBlob", func(t *testing.T) {
		s, dir := MustStore(t)
		b := MustPut(t, s, randomBytes(t, 100))
		if !b.New {
			t.Fatal("a first Put is not New")
		}
		if err := s.Discard(b); err != nil {
			t.Fatal(err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Fatalf("left behind: %v", fs)
		}
	})
	t.Run("StoredBefore", func(t *testing.T) {
		s, _ := MustStore(t)
		data := randomBytes(t, 100)
		MustPut(t, s, data)
		again := MustPut(t, s, data)
		if again.New {
			t.Fatal("a second Put of the same bytes is New")
		}
		if err := s.Discard(again); err != nil || !exists(s, again.Key) {
			t.Fatalf("Discard of bytes stored before removed them (%v)", err)
		}
	})
	t.Run("StoredAgainMeanwhile", func(t *testing.T) {
		// The first request fails after a second one was given the same
		// bytes: the blob stays for the second.
		s, _ := MustStore(t)
		data := randomBytes(t, 100)
		first := MustPut(t, s, data)
		time.Sleep(2 * time.Millisecond) // a modification time that differs
		MustPut(t, s, data)
		if err := s.Discard(first); err != nil || !exists(s, first.Key) {
			t.Fatalf("Discard removed a blob given out again (%v)", err)
		}
	})
}

func TestCollect(t *testing.T) {
	s, dir := MustStore(t)
	ctx := context.Background()
	old := MustPut(t, s, randomBytes(t, 100))
	oldReferenced := MustPut(t, s, randomBytes(t, 100))
	young := MustPut(t, s, randomBytes(t, 100))
	renewedData := randomBytes(t, 100)
	renewed := MustPut(t, s, renewedData)
	for _, b := range []media.Blob{old, oldReferenced, renewed} {
		age(t, dir, b.Key, 2*time.Hour)
	}
	age(t, dir, young.Key, 30*time.Minute)
	MustPut(t, s, renewedData) // given out again: young once more
	n, err := s.Collect(ctx, time.Hour, refs(oldReferenced.Key))
	if err != nil || n != 1 {
		t.Fatalf("Collect = %d, %v; want 1 removed", n, err)
	}
	if exists(s, old.Key) {
		t.Error("an old unreferenced blob was kept")
	}
	for name, b := range map[string]media.Blob{"referenced": oldReferenced, "younger than the grace": young, "renewed": renewed} {
		if !exists(s, b.Key) {
			t.Errorf("the %s blob was removed", name)
		}
	}
	t.Run("ManyInBatches", func(t *testing.T) {
		s, dir := MustStore(t)
		for range 12 {
			b := MustPut(t, s, randomBytes(t, 10))
			age(t, dir, b.Key, 2*time.Hour)
		}
		n, err := s.Collect(ctx, time.Hour, refs())
		if err != nil || n != 12 || len(files(t, dir)) != 0 {
			t.Fatalf("Collect = %d, %v; left %v", n, err, files(t, dir))
		}
	})
}
