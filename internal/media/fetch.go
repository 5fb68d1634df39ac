package media

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/safehttp"
)

// FetchMaxRedirects is how many redirects the client given to NewFetcher
// should follow (safehttp.Options.MaxRedirects).
const FetchMaxRedirects = 3

// Fetcher downloads files from user-given URLs (the url field of a send
// request) into a Store, with a size cap and the client's timeout. It is safe
// for concurrent use.
type Fetcher struct {
	store    *Store
	client   *http.Client
	maxBytes int64
}

// NewFetcher returns a Fetcher that stores into store at most maxBytes per
// file, downloading with client. The client should come from
// safehttp.NewClient with MaxRedirects FetchMaxRedirects, AllowPrivate from
// the configuration and a Timeout: it is what keeps requests out of private
// networks and bounds their time. It panics when maxBytes is not positive.
func NewFetcher(store *Store, client *http.Client, maxBytes int64) *Fetcher {
	if maxBytes <= 0 {
		panic("media: NewFetcher needs a positive maxBytes")
	}
	return &Fetcher{store: store, client: client, maxBytes: maxBytes}
}

// Fetch downloads rawURL into the store. It returns the blob, a file name
// (from the Content-Disposition header, else the last segment of the final
// URL's path, cleaned by SanitizeFilename; may be empty) and the response's
// Content-Type normalised ("" when absent or malformed; the blob's MimeType is
// the sniffed one). Whether the file may be sent (AllowedMime) is the
// caller's decision.
//
// Errors:
//   - ErrTooLarge when the Content-Length is over the cap (nothing is read)
//     or when the body grows past it while streaming;
//   - a VALIDATION_ERROR naming the field "url" for anything the URL is to
//     blame for: not http(s), a blocked address (also matching
//     safehttp.ErrBlockedAddress), too many redirects, a host that does not
//     resolve or answer, a non-2xx status, a timeout, a broken body;
//   - ctx's error, wrapped, when ctx ends first;
//   - other errors (the store failing: disk full, …) as they are, for the
//     caller to answer INTERNAL_ERROR.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string) (Blob, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return Blob{}, "", "", badURL("must be an absolute http or https URL", err)
	}
	if req.URL.User != nil {
		return Blob{}, "", "", badURL("must not contain a user name or password", nil)
	}
	req.Header.Set("User-Agent", "WabSync/"+wabsync.Version+" (media fetch)")
	req.Header.Set("Accept", "*/*")
	resp, err := f.client.Do(req)
	if err != nil {
		return Blob{}, "", "", f.fetchError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Blob{}, "", "", badURL("could not be fetched: the server answered "+strconv.Itoa(resp.StatusCode), nil)
	}
	if resp.ContentLength > f.maxBytes {
		return Blob{}, "", "", fmt.Errorf("media: fetch: Content-Length %d over %d: %w", resp.ContentLength, f.maxBytes, ErrTooLarge)
	}
	blob, err := f.store.Put(ctx, resp.Body, f.maxBytes)
	if err != nil {
		var re *readError
		if errors.As(err, &re) || ctx.Err() != nil {
			return Blob{}, "", "", f.fetchError(ctx, err)
		}
		return Blob{}, "", "", err // ErrTooLarge, or the store failing
	}
	name := filenameFromDisposition(resp.Header.Get("Content-Disposition"))
	if name == "" {
		name = SanitizeFilename(path.Base(resp.Request.URL.Path))
	}
	ctype := ""
	if t, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		ctype = mime.FormatMediaType(t, params)
	}
	return blob, name, ctype, nil
}

// fetchError classifies an error of the request or of reading its body.
func (f *Fetcher) fetchError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("media: fetch: %w", ctx.Err())
	}
	var ne net.Error
	switch {
	case errors.Is(err, safehttp.ErrBlockedAddress):
		return badURL("must not point to a private, loopback, link-local or reserved address", err)
	case errors.Is(err, safehttp.ErrTooManyRedirects):
		return badURL("could not be fetched: too many redirects", err)
	case errors.As(err, &ne) && ne.Timeout():
		return badURL("could not be fetched: timed out", err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return badURL("could not be fetched: the host does not resolve", err)
	}
	return badURL("could not be fetched", err)
}

func badURL(msg string, cause error) error {
	verr := wabsync.ValidationErrors{"url": msg}.Err()
	if cause == nil {
		return verr
	}
	return fmt.Errorf("%w: %w", verr, cause)
}

func filenameFromDisposition(v string) string {
	if v == "" {
		return ""
	}
	_, params, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return SanitizeFilename(params["filename"])
}

// maxFilename is the longest file name SanitizeFilename returns, in bytes.
const maxFilename = 200

// SanitizeFilename makes a user- or server-given file name safe to show and
// to send as a document's name: it keeps only the part after the last slash
// or backslash, drops control and format characters, invalid UTF-8 and the
// characters Windows forbids (<>:"|?*), trims spaces and dots at both ends
// and cuts the name to 200 bytes, keeping a short extension. It returns ""
// when nothing is left, or for "." and "..". The result is never used as a
// path: blobs are stored by hash.
func SanitizeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r),
			strings.ContainsRune(`<>:"|?*`, r):
			continue
		}
		b.WriteRune(r)
	}
	name = strings.Trim(b.String(), " .")
	if len(name) > maxFilename {
		ext := path.Ext(name)
		if len(ext) > 16 || len(ext) == len(name) {
			ext = ""
		}
		stem := name[:len(name)-len(ext)]
		cut := maxFilename - len(ext)
		for cut > 0 && !utf8.RuneStart(stem[cut]) {
			cut--
		}
		name = strings.TrimRight(stem[:cut], " .") + ext
	}
	return name
}
