package media

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/wabsync/wabsync"
)

// PutBase64 stores the file encoded in b64 (the base64 field of a send
// request) as Put does, decoding as it streams: the decoded bytes are never
// held whole. It accepts the standard and the URL-safe alphabets, with or
// without padding, line breaks and spaces, and a data URL prefix
// ("data:image/png;base64,"), whose declared type is ignored in favour of the
// sniffed one. Errors: ErrTooLarge past limit; a VALIDATION_ERROR naming the
// field "base64" when b64 is empty or not valid base64.
func (s *Store) PutBase64(ctx context.Context, b64 string, limit int64) (Blob, error) {
	if len(b64) >= 5 && strings.EqualFold(b64[:5], "data:") {
		head, rest, ok := strings.Cut(b64, ",")
		if !ok || !strings.HasSuffix(strings.ToLower(head), ";base64") {
			return Blob{}, invalidBase64("must be base64 (a data URL must say ;base64)", nil)
		}
		b64 = rest
	}
	trimmed := strings.TrimRight(b64, " \t\r\n")
	if strings.TrimLeft(trimmed, " \t\r\n") == "" {
		return Blob{}, invalidBase64("must not be empty", nil)
	}
	var enc *base64.Encoding
	urlSafe := strings.ContainsAny(b64, "-_")
	padded := strings.HasSuffix(trimmed, "=")
	switch {
	case urlSafe && padded:
		enc = base64.URLEncoding
	case urlSafe:
		enc = base64.RawURLEncoding
	case padded:
		enc = base64.StdEncoding
	default:
		enc = base64.RawStdEncoding
	}
	blob, err := s.Put(ctx, base64.NewDecoder(enc, spaceDropper{strings.NewReader(b64)}), limit)
	var corrupt base64.CorruptInputError
	if errors.As(err, &corrupt) {
		return Blob{}, invalidBase64("is not valid base64", err)
	}
	return blob, err
}

func invalidBase64(msg string, cause error) error {
	verr := wabsync.ValidationErrors{"base64": msg}.Err()
	if cause == nil {
		return verr
	}
	return fmt.Errorf("%w: %w", verr, cause)
}

// spaceDropper reads r without ASCII white space (the base64 decoder itself
// only skips line breaks).
type spaceDropper struct{ r io.Reader }

func (d spaceDropper) Read(p []byte) (int, error) {
	for {
		n, err := d.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			switch c {
			case ' ', '\t', '\r', '\n', '\f', '\v':
			default:
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil || n == 0 {
			return j, err
		}
	}
}
