package media_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/media"
)

// wrap breaks s into lines of n characters, MIME style.
func wrap(s string, n int, sep string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + sep)
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

func TestPutBase64(t *testing.T) {
	png := pngBytes(t)
	odd := append(randomBytes(t, 10_000), 0xfb, 0xff, 0xfe) // has + and / (or - and _) when encoded
	cases := []struct {
		name string
		data []byte
		b64  string
	}{
		{"Std", png, base64.StdEncoding.EncodeToString(png)},
		{"StdRaw", png, base64.RawStdEncoding.EncodeToString(png)},
		{"URL", odd, base64.URLEncoding.EncodeToString(odd)},
		{"URLRaw", odd, base64.RawURLEncoding.EncodeToString(odd)},
		{"DataURL", png, "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)},
		{"MIMELines", odd, wrap(base64.StdEncoding.EncodeToString(odd), 76, "\r\n") + "\r\n"},
		{"Spaces", odd, " " + wrap(base64.StdEncoding.EncodeToString(odd), 64, " \n\t") + " "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := MustStore(t)
			b, err := s.PutBase64(t.Context(), tc.b64, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if b.SHA256 != sha(tc.data) || b.Size != int64(len(tc.data)) {
				t.Errorf("blob = %+v, want sha %s size %d", b, sha(tc.data), len(tc.data))
			}
		})
	}
	t.Run("SniffsDecodedBytes", func(t *testing.T) {
		s, _ := MustStore(t)
		b, err := s.PutBase64(t.Context(), "data:application/octet-stream;base64,"+base64.StdEncoding.EncodeToString(png), 1<<20)
		if err != nil || b.MimeType != "image/png" {
			t.Errorf("blob = %+v, %v; want image/png", b, err)
		}
	})
	invalid := []struct{ name, b64 string }{
		{"Empty", ""},
		{"Blank", " \n "},
		{"BadChars", "aGVsbG8*d29ybGQ="},
		{"PaddingInside", "aGVs=bG8="},
		{"MixedAlphabets", "ab+c-d__"},
		{"TooMuchPadding", "aGVsbG8=="},
		{"PaddingOnly", "===="},
		{"DataURLNotBase64", "data:text/plain,hello"},
		{"DataURLNoComma", "data:image/png;base64"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := MustStore(t)
			_, err := s.PutBase64(t.Context(), tc.b64, 1<<20)
			var we *wabsync.Error
			if !errors.As(err, &we) || we.Code != wabsync.EValidation || we.Details["base64"] == "" {
				t.Fatalf("err = %v, want a VALIDATION_ERROR naming base64", err)
			}
			if fs := files(t, dir); len(fs) != 0 {
				t.Errorf("files left behind: %v", fs)
			}
		})
	}
	t.Run("ReaderError", func(t *testing.T) {
		s, dir := MustStore(t)
		cut := errors.New("connection reset")
		_, err := s.PutBase64Reader(t.Context(), io.MultiReader(strings.NewReader("aGVsbG8gd29y"), iotestErr{cut}), 1<<20)
		if !errors.Is(err, cut) || !media.IsReadError(err) {
			t.Fatalf("err = %v, want the reader's error", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		s, dir := MustStore(t)
		_, err := s.PutBase64(t.Context(), base64.StdEncoding.EncodeToString(make([]byte, 1001)), 1000)
		if !errors.Is(err, media.ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
		if fs := files(t, dir); len(fs) != 0 {
			t.Errorf("files left behind: %v", fs)
		}
	})
	t.Run("MemoryDoesNotScale", func(t *testing.T) {
		s, _ := MustStore(t)
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		b64 := base64.StdEncoding.EncodeToString(data)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b, err := s.PutBase64(t.Context(), b64, 8<<20)
		runtime.ReadMemStats(&after)
		if err != nil || b.SHA256 != sha(data) {
			t.Fatalf("PutBase64 = %+v, %v", b, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<10 {
			t.Errorf("PutBase64 of 4 MiB allocated %d bytes, want under 512 KiB", alloc)
		}
	})
}
