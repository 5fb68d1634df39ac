package media_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/media"
)

// MustStore opens a store in a fresh temp dir and returns it with the dir.
func MustStore(tb testing.TB) (*media.Store, string) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "media")
	s, err := media.NewStore(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return s, dir
}

// MustPut stores data with a generous limit.
func MustPut(tb testing.TB, s *media.Store, data []byte) media.Blob {
	tb.Helper()
	b, err := s.Put(context.Background(), bytes.NewReader(data), 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// files lists the regular files under dir (temp files included).
func files(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func randomBytes(tb testing.TB, n int) []byte {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// zeros is an endless stream of zero bytes that counts what was read.
type zeros struct{ read int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.read += int64(len(p))
	return len(p), nil
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		s, dir := MustStore(t)
		data := randomBytes(t, 1<<20+123)
		b := MustPut(t, s, data)
		if b.SHA256 != sha(data) || b.Key != b.SHA256 || b.Size != int64(len(data)) {
			t.Fatalf("blob = %+v, want sha %s size %d", b, sha(data), len(data))
		}
		f, err := s.Open(b.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes (err %v), want the %d stored", len(got), err, len(data))
		}
		if size, err := s.Stat(b.Key); err != nil || size != b.Size {
			t.Errorf("Stat = %d, %v; want %d", size, err, b.Size)
		}
		want := filepath.Join(dir, b.Key[:2], b.Key[2:4], b.Key)
		if fs := files(t, dir); len(fs) != 1 || fs[0] != want {
			t.Errorf("files = %v, want [%s]", fs, want)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		s, _ := MustStore(t)
		b := MustPut(t, s, nil)
		if b.Size != 0 || b.SHA256 != sha(nil) || b.MimeType != "application/octet-stream" {
			t.Errorf("blob = %+v", b)
		}
	})
	t.Run("SameContentStoredOnce", func(t *testing.T) {
		s, dir := MustStore(t)
		data := randomBytes(t, 100_000)
		b1 := MustPut(t, s, data)
		b2 := MustPut(t, s, data)
		if b1.Key != b2.Key || b1.Size != b2.Size || b1.MimeType != b2.MimeType || !b1.New || b2.New {
			t.Errorf("blobs differ: %+v, %+v (want the second not New)", b1, b2)
		}
		if fs := files(t, dir); len(fs) != 1 {
			t.Errorf("files = %v, want one", fs)
		}
		MustPut(t, s, data[1:])
		if fs := files(t, dir); len(fs) != 2 {
			t.Errorf("files = %v, want two", fs)
		}
	})
	t.Run("ConcurrentSameContent", func(t *testing.T) {
		s, dir := MustStore(t)
		data := randomBytes(t, 200_000)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if b, err := s.Put(ctx, bytes.NewReader(data), 1<<20); err != nil || b.SHA256 != sha(data) {
					t.Errorf("Put = %+v, %v", b, err)
				}
			})
		}
		wg.Wait()
		if fs := files(t, dir); len(fs) != 1 {
			t.Errorf("files = %v, want one", fs)
		}
	})
	t.Run("ExactlyAtLimit", func(t *testing.T) {
		s, _ := MustStore(t)
		if _, err := s.Put(ctx, bytes.NewReader(make([]byte, 100)), 100); err != nil {
			t.Fatalf("Put of limit bytes: %v", err)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		s, dir := MustStore(t)
		_, err := s.Put(ctx, bytes.NewReader(make([]byte, 101)), 100)
		if !errors.Is(err, media.ErrTooLarge) || wabsync.ErrorCode(err) != wabsync.EPayloadTooLarge {
			t.Fatalf("err = %v, want ErrTooLarge (PAYLOAD_TOO_LARGE)", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("ErrTooLargeStopsReading", func(t *testing.T) {
		s, dir := MustStore(t)
		z := &zeros{}
		_, err := s.Put(ctx, z, 1<<20)
		if !errors.Is(err, media.ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if z.read > 1<<20+64<<10 {
			t.Errorf("read %d bytes of an endless stream for a 1 MiB limit", z.read)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("ReadErrorLeavesNothing", func(t *testing.T) {
		s, dir := MustStore(t)
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader(make([]byte, 70_000)), iotestErr{boom})
		if _, err := s.Put(ctx, r, 1<<20); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("Cancelled", func(t *testing.T) {
		s, dir := MustStore(t)
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(ctx, &zeros{}, 1<<30); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("InvalidLimit", func(t *testing.T) {
		s, _ := MustStore(t)
		if _, err := s.Put(ctx, strings.NewReader("x"), 0); err == nil {
			t.Error("Put with limit 0 succeeded")
		}
	})
	t.Run("ErrInvalidKey", func(t *testing.T) {
		s, _ := MustStore(t)
		for _, key := range []string{"", "../../etc/passwd", "ab", strings.Repeat("A", 64),
			strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 65), "/" + strings.Repeat("a", 63)} {
			_, err := s.Open(key)
			if !errors.Is(err, media.ErrInvalidKey) || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Open(%q) err = %v, want ErrInvalidKey and os.ErrNotExist", key, err)
			}
			if _, err := s.Stat(key); !errors.Is(err, media.ErrInvalidKey) {
				t.Errorf("Stat(%q) err = %v, want ErrInvalidKey", key, err)
			}
			if err := s.Delete(key); !errors.Is(err, media.ErrInvalidKey) {
				t.Errorf("Delete(%q) err = %v, want ErrInvalidKey", key, err)
			}
		}
	})
	t.Run("Missing", func(t *testing.T) {
		s, _ := MustStore(t)
		key := sha([]byte("never stored"))
		if _, err := s.Open(key); !errors.Is(err, os.ErrNotExist) || errors.Is(err, media.ErrInvalidKey) {
			t.Errorf("Open err = %v, want os.ErrNotExist only", err)
		}
		if _, err := s.Stat(key); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stat err = %v, want os.ErrNotExist", err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s, dir := MustStore(t)
		b := MustPut(t, s, []byte("to delete"))
		if err := s.Delete(b.Key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(b.Key); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open after Delete: %v", err)
		}
		if err := s.Delete(b.Key); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left: %v", fs)
		}
	})
	t.Run("StaleTempRemoved", func(t *testing.T) {
		dir := t.TempDir()
		stale := filepath.Join(dir, ".tmp-123")
		if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := mustTime(t, "2020-01-01T00:00:00Z")
		if err := os.Chtimes(stale, old, old); err != nil {
			t.Fatal(err)
		}
		fresh := filepath.Join(dir, ".tmp-456")
		if err := os.WriteFile(fresh, []byte("in progress"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := media.NewStore(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Error("stale temp file kept")
		}
		if _, err := os.Stat(fresh); err != nil {
			t.Error("fresh temp file removed")
		}
	})
}

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// pattern is a deterministic stream of n bytes that differs with seed, made
// without allocating.
type pattern struct {
	left int64
	x    uint64
}

func newPattern(n int64, seed uint64) *pattern {
	return &pattern{left: n, x: seed*0x9e3779b97f4a7c15 + 1}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	for i := range b {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		b[i] = byte(p.x)
	}
	p.left -= int64(len(b))
	return len(b), nil
}

func TestPutMemoryDoesNotScale(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	MustPut(t, s, []byte("warm up"))
	const size = 16 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, err := s.Put(ctx, newPattern(size, 1), size)
	runtime.ReadMemStats(&after)
	if err != nil || b.Size != size {
		t.Fatalf("Put = %+v, %v", b, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("Put of 16 MiB allocated %d bytes, want under 1 MiB", alloc)
	}
}

func BenchmarkPut(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int64
	}{{"1MiB", 1 << 20}, {"16MiB", 16 << 20}} {
		size := bc.size
		b.Run(bc.name, func(b *testing.B) {
			s, _ := MustStore(b)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(size)
			seed := uint64(0)
			for b.Loop() {
				seed++
				blob, err := s.Put(ctx, newPattern(size, seed), size)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.Delete(blob.Key); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
