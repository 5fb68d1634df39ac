package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/wabsync/wabsync"
)

// errBadJSON is a body that is not one JSON object.
var errBadJSON = errors.New("httpapi: not a JSON object")

// errFieldsTooLarge is a body whose fields other than the file are larger
// than the JSON limit.
var errFieldsTooLarge = errors.New("httpapi: JSON fields too large")

// fileJSON walks a JSON object as it streams in: each field but one is
// handed over whole (their bytes together bounded by maxFields), and the
// string value of the field named file is handed over as a reader of its
// characters, never held whole. encoding/json cannot stream one value, so
// the walker reads that string itself and then hands the rest of the
// object back to a json.Decoder.
type fileJSON struct {
	file      string
	maxFields int64
	// field receives every other field's raw value; onFile reads the file
	// string to its end (or fails).
	field  func(key string, raw json.RawMessage) error
	onFile func(r io.Reader) error
}

// walk reads body, a JSON object, to its end. An empty body is {}.
func (f *fileJSON) walk(body io.Reader) error {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	if tok, err := dec.Token(); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil {
		return tooLargeOr(err, errBadJSON)
	} else if tok != json.Delim('{') {
		return errBadJSON
	}
	var used int64
	for {
		if !dec.More() {
			return f.end(dec)
		}
		tok, err := dec.Token()
		if err != nil {
			return tooLargeOr(err, errBadJSON)
		}
		key, _ := tok.(string)
		if key != f.file {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return tooLargeOr(err, errBadJSON)
			}
			if used += int64(len(key) + len(raw)); used > f.maxFields {
				return errFieldsTooLarge
			}
			if err := f.field(key, raw); err != nil {
				return err
			}
			continue
		}
		// The file string: read it from what the decoder holds and the
		// rest of the body, then resume on what follows it.
		br := bufio.NewReaderSize(io.MultiReader(dec.Buffered(), body), 32<<10)
		if err := f.readFile(br); err != nil {
			return err
		}
		more, err := afterValue(br)
		if err != nil || !more {
			return err
		}
		body = br
		dec = json.NewDecoder(io.MultiReader(strings.NewReader("{"), br))
		dec.UseNumber()
		if _, err := dec.Token(); err != nil {
			return tooLargeOr(err, errBadJSON)
		}
	}
}

// readFile reads `: "…"` and gives onFile the string's characters.
func (f *fileJSON) readFile(br *bufio.Reader) error {
	if c, err := skipSpace(br); err != nil || c != ':' {
		return tooLargeOr(err, errBadJSON)
	}
	if c, err := skipSpace(br); err != nil {
		return tooLargeOr(err, errBadJSON)
	} else if c != '"' {
		return fieldError(wabsync.EValidation, f.file, "must be a string")
	}
	s := &jsonString{r: br}
	if err := f.onFile(s); err != nil {
		return err
	}
	if !s.done {
		return errBadJSON
	}
	return nil
}

// end reads the closing brace and checks that nothing follows it.
func (f *fileJSON) end(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil {
		return tooLargeOr(err, errBadJSON)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return tooLargeOr(err, errBadJSON)
	}
	return nil
}

// afterValue reads what follows a value in an object: a comma (more is
// true) or the closing brace and only white space after it.
func afterValue(br *bufio.Reader) (more bool, err error) {
	c, err := skipSpace(br)
	if err != nil {
		return false, tooLargeOr(err, errBadJSON)
	}
	switch c {
	case ',':
		return true, nil
	case '}':
		if _, err := skipSpace(br); !errors.Is(err, io.EOF) {
			return false, tooLargeOr(err, errBadJSON)
		}
		return false, nil
	}
	return false, errBadJSON
}

// skipSpace returns the next byte that is not JSON white space.
func skipSpace(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c, nil
		}
	}
}

// jsonString reads the characters of a JSON string whose opening quote has
// been read, up to its closing quote (done). Escapes are decoded for ASCII
// (an encoder may write "\/" or "\n" inside base64); any other character is
// passed on for the caller to refuse.
type jsonString struct {
	r    *bufio.Reader
	done bool
}

func (s *jsonString) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && !s.done {
		if s.r.Buffered() == 0 {
			if n > 0 {
				break // return what there is rather than wait for more
			}
			if _, err := s.r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = errBadJSON
				}
				return n, err
			}
		}
		// Copy the run of plain characters at once.
		chunk, _ := s.r.Peek(min(s.r.Buffered(), len(p)-n))
		plain := 0
		for plain < len(chunk) && chunk[plain] >= 0x20 && chunk[plain] != '"' && chunk[plain] != '\\' {
			plain++
		}
		if plain > 0 {
			n += copy(p[n:], chunk[:plain])
			_, _ = s.r.Discard(plain)
			continue
		}
		c, _ := s.r.ReadByte()
		switch {
		case c == '"':
			s.done = true
			continue
		case c < 0x20:
			return n, errBadJSON
		}
		c, err := s.escape()
		if err != nil {
			return n, err
		}
		p[n] = c
		n++
	}
	if n == 0 && s.done {
		return 0, io.EOF
	}
	return n, nil
}

// escape decodes the escape after a backslash; a \u escape beyond ASCII
// becomes a byte that is not base64 ('?').
func (s *jsonString) escape() (byte, error) {
	c, err := s.r.ReadByte()
	if err != nil {
		return 0, tooLargeOr(err, errBadJSON)
	}
	switch c {
	case '"', '\\', '/':
		return c, nil
	case 'b', 'f', 'n', 'r', 't':
		return ' ', nil
	case 'u':
		var v rune
		for range 4 {
			h, err := s.r.ReadByte()
			if err != nil {
				return 0, tooLargeOr(err, errBadJSON)
			}
			d := strings.IndexByte("0123456789abcdef", h|0x20)
			if d < 0 {
				return 0, errBadJSON
			}
			v = v<<4 | rune(d)
		}
		if v >= 0x80 {
			return '?', nil
		}
		return byte(v), nil
	}
	return 0, errBadJSON
}
