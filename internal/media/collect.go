package media

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Discard removes a blob that Put has just stored for a request that failed
// after all. It removes only a new blob (b.New) that nothing stored again
// since: a second Put of the same bytes renews the file's modification
// time, and then the blob is left to Collect. Discarding a blob that is
// gone already is not an error.
func (s *Store) Discard(b Blob) error {
	if !b.New || !ValidKey(b.Key) {
		return nil
	}
	_, err := s.removeUnless(b.Key, func(mod time.Time) bool { return !mod.Equal(b.mod) })
	return err
}

// removeUnless removes the blob key unless keep says otherwise of its
// modification time, and reports whether it removed it. A Put of the same
// bytes renews that time (renewLocked); to be safe from one in another
// process too, the file is first renamed away and its time read there: a
// renewal before the rename is seen and the file put back (over a copy that
// a Put may have stored meanwhile: the same bytes), and one after it fails,
// so that Put stores the bytes anew.
func (s *Store) removeUnless(key string, keep func(mod time.Time) bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	final := s.path(key)
	grave := filepath.Join(s.dir, tempPrefix+"gone-"+key)
	if err := os.Rename(final, grave); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	info, err := os.Stat(grave)
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("media: %s is not a file", key)
	}
	if err != nil || keep(info.ModTime()) {
		if rerr := os.Rename(grave, final); rerr != nil {
			return false, rerr
		}
		return false, err
	}
	return true, os.Remove(grave)
}

// ReferencedFunc reports which of keys something (a message) still refers to.
type ReferencedFunc func(ctx context.Context, keys []string) (map[string]bool, error)

// collectBatch is how many blob keys Collect asks about at once.
const collectBatch = 20000

// Collect removes the blobs of this store that referenced does not report
// and that are older than grace (by modification time: Put renews it when
// it gives a blob out again), so that a message being accepted never loses
// its file. It also removes temp files left by a crash that are older than
// grace. It returns how many blobs it removed. Only this store's directory
// is touched: each node collects its own.
func (s *Store) Collect(ctx context.Context, grace time.Duration, referenced ReferencedFunc) (int, error) {
	cutoff := s.now().Add(-grace)
	s.removeStaleTemps(cutoff)
	removed := 0
	batch := make([]string, 0, collectBatch)
	flush := func() error {
		n, err := s.collectBatch(ctx, batch, cutoff, referenced)
		removed += n
		batch = batch[:0]
		return err
	}
	err := filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a directory that vanished or cannot be read: skip it
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !ValidKey(d.Name()) {
			return nil
		}
		if info, err := d.Info(); err != nil || !info.ModTime().Before(cutoff) {
			return nil
		}
		batch = append(batch, d.Name())
		if len(batch) == collectBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	return removed, err
}

// collectBatch removes those of keys that nothing refers to and that are
// still older than cutoff.
func (s *Store) collectBatch(ctx context.Context, keys []string, cutoff time.Time, referenced ReferencedFunc) (int, error) {
	refs, err := referenced(ctx, keys)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, k := range keys {
		if refs[k] {
			continue
		}
		ok, err := s.removeIfOlder(k, cutoff)
		if err != nil {
			return removed, err
		}
		if ok {
			removed++
		}
	}
	return removed, nil
}

// removeIfOlder removes the blob key unless Put renewed it since cutoff.
func (s *Store) removeIfOlder(key string, cutoff time.Time) (bool, error) {
	return s.removeUnless(key, func(mod time.Time) bool { return !mod.Before(cutoff) })
}
