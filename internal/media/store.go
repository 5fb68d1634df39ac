// Package media keeps the files of messages: a content-addressed blob store
// in the data directory, signed and expiring links to its files, fetching
// files from user-given URLs with limits, and deciding what kind of message a
// file makes. Files are streamed: nothing here holds a whole file in memory.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wabsync/wabsync"
)

// ErrTooLarge is returned (wrapped) when a file is larger than the limit it
// was given; nothing of it is left behind. It is a *wabsync.Error with code
// PAYLOAD_TOO_LARGE, so the HTTP layer answers 413 with no more work.
var ErrTooLarge error = &wabsync.Error{Code: wabsync.EPayloadTooLarge, Message: "The file is larger than the allowed size."}

// ErrInvalidKey is returned (wrapped) for a blob key that is not 64 lowercase
// hexadecimal digits. It also matches os.ErrNotExist, so a handler that
// answers 404 for a missing blob does the same for a malformed key.
var ErrInvalidKey = errors.New("media: invalid blob key")

// tempPrefix starts the names of files being written. Keys are hex, so a temp
// file is never mistaken for a blob.
const tempPrefix = ".tmp-"

// staleTemp is how old a leftover temp file (from a crash) must be before
// NewStore removes it.
const staleTemp = time.Hour

// Blob describes a stored file.
type Blob struct {
	// Key names the file in the store: the hex SHA-256 of its bytes.
	Key string
	// Size is the file's size in bytes.
	Size int64
	// SHA256 is the hex SHA-256 of the bytes.
	SHA256 string
	// MimeType is the type sniffed from the first bytes (see Sniff), not any
	// type a user declared.
	MimeType string
	// New says that Put wrote these bytes: they were not stored before. Only
	// a new blob is removed by Discard.
	New bool
	// mod is the new file's modification time, which Discard compares.
	mod time.Time
}

// Store is a content-addressed blob store in a directory (the data
// directory's "media" folder). A blob's path derives from its SHA-256 only
// (ab/cd/abcd…), never from anything a user sent; the same bytes are stored
// once. It is safe for concurrent use, also by several processes sharing the
// directory.
type Store struct {
	dir string
	// mu orders the steps that make a blob appear (rename), renew it (a
	// second Put of the same bytes) and disappear (Discard, Collect), so
	// that no blob is removed after a Put has returned it.
	mu sync.Mutex
	// now is the clock of modification times and of Collect's grace.
	now func() time.Time
}

// NewStore opens the store in dir, creating the directory when needed, and
// removes temp files that a crash left behind more than an hour ago.
func NewStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("media: store dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("media: store dir: %w", err)
	}
	s := &Store{dir: abs, now: time.Now}
	s.removeStaleTemps(time.Now().Add(-staleTemp))
	return s, nil
}

func (s *Store) removeStaleTemps(before time.Time) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().Before(before) {
			_ = os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}

// copyBufs holds the buffers Put streams through, so that storing a file
// allocates the same small amount whatever its size.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Put streams r into the store and returns what was stored. It writes to a
// temp file in the store's directory while hashing (SHA-256) and keeping the
// first 512 bytes for sniffing; it fails with ErrTooLarge as soon as more than
// limit bytes arrive, and stops when ctx is done. A new file is fsynced, then
// renamed to its content-derived path, and the directory is fsynced; a file
// already stored is kept and the copy discarded. On any error nothing is left
// behind. An error of r comes back wrapped (errors.Is and errors.As see it).
// limit must be positive.
func (s *Store) Put(ctx context.Context, r io.Reader, limit int64) (Blob, error) {
	if limit <= 0 {
		return Blob{}, errors.New("media: Put needs a positive limit")
	}
	if err := ctx.Err(); err != nil {
		return Blob{}, err
	}
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return Blob{}, fmt.Errorf("media: temp file: %w", err)
	}
	tmp := f.Name()
	kept := false
	defer func() {
		if !kept {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	h := sha256.New()
	var head [sniffLen]byte
	headLen := 0
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return Blob{}, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > limit {
				return Blob{}, fmt.Errorf("media: more than %d bytes: %w", limit, ErrTooLarge)
			}
			if headLen < len(head) {
				headLen += copy(head[headLen:], buf[:n])
			}
			h.Write(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				return Blob{}, fmt.Errorf("media: write: %w", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return Blob{}, &readError{rerr}
		}
	}

	var sum [sha256.Size]byte
	key := hex.EncodeToString(h.Sum(sum[:0]))
	blob := Blob{Key: key, Size: size, SHA256: key, MimeType: Sniff(head[:headLen])}
	if s.renew(key, size) {
		return blob, nil // stored already; the deferred cleanup drops the copy
	}
	if err := f.Sync(); err != nil {
		return Blob{}, fmt.Errorf("media: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return Blob{}, fmt.Errorf("media: close: %w", err)
	}
	dirs, renewed, err := s.place(tmp, key, size, &blob)
	if err != nil {
		return Blob{}, err
	}
	if renewed {
		return blob, nil
	}
	kept = true
	// Make the new name durable, and the new directories when there are some.
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return Blob{}, fmt.Errorf("media: sync dir: %w", err)
		}
	}
	return blob, nil
}

// renew reports whether the blob key of size bytes is stored already, and
// if so sets its modification time to now: a blob just given out again is
// as young as a new one for Collect.
func (s *Store) renew(key string, size int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewLocked(key, size)
}

func (s *Store) renewLocked(key string, size int64) bool {
	final := s.path(key)
	info, err := os.Stat(final)
	if err != nil || !info.Mode().IsRegular() || info.Size() != size {
		return false
	}
	now := s.now()
	return os.Chtimes(final, now, now) == nil
}

// place renames the temp file tmp to the blob key (unless the same bytes
// arrived meanwhile: renewed) and fills blob's New and mod. It returns the
// directories whose entries changed, to be synced.
func (s *Store) place(tmp, key string, size int64, blob *Blob) (dirs []string, renewed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renewLocked(key, size) {
		return nil, true, nil
	}
	final := s.path(key)
	leaf := filepath.Dir(final)
	_, statErr := os.Stat(leaf)
	if err := os.MkdirAll(leaf, 0o750); err != nil {
		return nil, false, fmt.Errorf("media: mkdir: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, false, fmt.Errorf("media: rename: %w", err)
	}
	blob.New = true
	if info, err := os.Stat(final); err == nil {
		blob.mod = info.ModTime()
	}
	dirs = []string{leaf}
	if statErr != nil {
		dirs = append(dirs, filepath.Dir(leaf), s.dir)
	}
	return dirs, false, nil
}

// readError is an error of the reader given to Put, as opposed to one of the
// store.
type readError struct{ err error }

func (e *readError) Error() string { return "media: read: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// IsReadError reports whether err is an error of the reader given to Put
// (a request body cut short, say) rather than one of the store.
func IsReadError(err error) bool {
	var re *readError
	return errors.As(err, &re)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Open opens the blob named key for reading. A malformed key fails with
// ErrInvalidKey before the file system is touched; a missing blob fails with
// an error matching os.ErrNotExist (as does a malformed key).
func (s *Store) Open(key string) (*os.File, error) {
	if !ValidKey(key) {
		return nil, invalidKey(key)
	}
	return os.Open(s.path(key))
}

// Stat returns the size of the blob named key; errors as for Open.
func (s *Store) Stat(key string) (size int64, err error) {
	if !ValidKey(key) {
		return 0, invalidKey(key)
	}
	info, err := os.Stat(s.path(key))
	if err != nil {
		return 0, err
	}
	if !info.Mode().IsRegular() {
		return 0, &fs.PathError{Op: "stat", Path: s.path(key), Err: fs.ErrNotExist}
	}
	return info.Size(), nil
}

// Delete removes the blob named key. Deleting a missing blob is not an error;
// a malformed key is (ErrInvalidKey). Callers make sure that nothing refers to
// the bytes any more: the same bytes have the same key.
func (s *Store) Delete(key string) error {
	if !ValidKey(key) {
		return invalidKey(key)
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ValidKey reports whether key has the shape of a blob key: 64 lowercase
// hexadecimal digits.
func ValidKey(key string) bool {
	if len(key) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func invalidKey(key string) error {
	if len(key) > 80 {
		key = key[:80] + "…"
	}
	return fmt.Errorf("%w %q: %w", ErrInvalidKey, key, fs.ErrNotExist)
}

// path is where the blob named key lives. key must be valid.
func (s *Store) path(key string) string {
	return filepath.Join(s.dir, key[0:2], key[2:4], key)
}
