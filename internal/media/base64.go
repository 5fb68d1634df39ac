package media

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/wabsync/wabsync"
)

// PutBase64 stores the file encoded in b64 (the base64 field of a send
// request) as PutBase64Reader does.
func (s *Store) PutBase64(ctx context.Context, b64 string, limit int64) (Blob, error) {
	return s.PutBase64Reader(ctx, strings.NewReader(b64), limit)
}

// maxDataURLHead bounds the "data:…;base64," prefix of a data URL.
const maxDataURLHead = 256

// PutBase64Reader stores the file whose base64 text r yields, as Put does,
// decoding as it streams: neither the text nor the decoded bytes are ever
// held whole. It accepts the standard and the URL-safe alphabets (not
// mixed), with or without padding, line breaks and spaces, and a data URL
// prefix ("data:image/png;base64,"), whose declared type is ignored in
// favour of the sniffed one. Errors: ErrTooLarge past limit; a
// VALIDATION_ERROR naming the field "base64" when the text is empty or not
// valid base64; an error of r itself comes back wrapped. Nothing is left
// behind on error.
func (s *Store) PutBase64Reader(ctx context.Context, r io.Reader, limit int64) (Blob, error) {
	br := bufio.NewReaderSize(r, 4096)
	if err := skipDataURLHead(br); err != nil {
		return Blob{}, err
	}
	text := &base64Text{r: br}
	blob, err := s.Put(ctx, base64.NewDecoder(base64.RawStdEncoding, text), limit)
	var corrupt base64.CorruptInputError
	var bad *badBase64
	switch {
	case errors.As(err, &bad):
		return Blob{}, invalidBase64(bad.msg, nil)
	case errors.As(err, &corrupt):
		return Blob{}, invalidBase64("is not valid base64", corrupt)
	}
	return blob, err
}

// skipDataURLHead reads a data URL's head ("data:…;base64,") when the text
// starts with one.
func skipDataURLHead(br *bufio.Reader) error {
	start, _ := br.Peek(5)
	if len(start) < 5 || !strings.EqualFold(string(start), "data:") {
		return nil
	}
	head, err := br.Peek(maxDataURLHead)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return &readError{err}
	}
	i := strings.IndexByte(string(head), ',')
	if i < 0 || !strings.HasSuffix(strings.ToLower(string(head[:i])), ";base64") {
		return invalidBase64("must be base64 (a data URL must say ;base64)", nil)
	}
	_, err = br.Discard(i + 1)
	return err
}

func invalidBase64(msg string, cause error) error {
	verr := wabsync.ValidationErrors{"base64": msg}.Err()
	if cause == nil {
		return verr
	}
	return fmt.Errorf("%w: %w", verr, cause)
}

// badBase64 is what base64Text finds wrong with the text.
type badBase64 struct{ msg string }

func (e *badBase64) Error() string { return "media: base64: " + e.msg }

// base64Text reads base64 text as the standard alphabet without padding,
// for base64.RawStdEncoding: it drops ASCII white space, turns the URL-safe
// alphabet into the standard one (refusing a mix of the two), and drops the
// padding, which may only end the text and must complete its last quantum.
// It fails at the end of a text with nothing in it.
type base64Text struct {
	r                *bufio.Reader
	chars, pad       int64
	urlSafe, stdOnly bool
}

func (t *base64Text) Read(p []byte) (int, error) {
	for {
		n, err := t.r.Read(p)
		j, ferr := t.filter(p[:n])
		if ferr != nil {
			return j, ferr
		}
		switch {
		case j > 0:
			return j, nil
		case errors.Is(err, io.EOF):
			return 0, t.end()
		case err != nil:
			return 0, err
		}
	}
}

// filter rewrites b in place to what the decoder reads and returns its new
// length.
func (t *base64Text) filter(b []byte) (int, error) {
	j := 0
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n', '\f', '\v':
			continue
		case '=':
			t.pad++
			continue
		case '-':
			t.urlSafe, c = true, '+'
		case '_':
			t.urlSafe, c = true, '/'
		case '+', '/':
			t.stdOnly = true
		}
		if t.pad > 0 {
			return j, &badBase64{"is not valid base64 (padding inside)"}
		}
		if t.urlSafe && t.stdOnly {
			return j, &badBase64{"is not valid base64 (mixes the standard and URL-safe alphabets)"}
		}
		b[j] = c
		j++
	}
	t.chars += int64(j)
	return j, nil
}

// end checks the text as a whole once it has been read.
func (t *base64Text) end() error {
	switch {
	case t.chars == 0:
		return &badBase64{"must not be empty"}
	case t.pad > 2 || (t.pad > 0 && (t.chars+t.pad)%4 != 0):
		return &badBase64{"is not valid base64 (wrong padding)"}
	}
	return io.EOF
}
