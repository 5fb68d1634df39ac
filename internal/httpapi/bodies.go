package httpapi

import (
	"io"
	"net/http"
	"time"
)

// Defaults of the body settings (WABSYNC_READ_TIMEOUT,
// WABSYNC_UPLOAD_MIN_RATE).
const (
	DefaultReadTimeout   = 30 * time.Second
	DefaultUploadMinRate = 16 << 10 // bytes per second
)

// uploadRoutes may send bodies too large for the read timeout: they get a
// minimum transfer rate instead (minRateBody).
var uploadRoutes = map[string]bool{
	"POST /api/v1/sessions/{session}/messages/file": true,
}

// dropBody makes net/http answer without reading the request's body and
// close the connection after the response, when the request has a body the
// handler will not read. Otherwise the server reads what is left of it
// (before the answer, and again when the request ends, to keep the
// connection), and a client that trickles its body holds the connection
// until the read timeout. It reports whether there was a body to drop.
func dropBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return false
	}
	w.Header().Set("Connection", "close")
	// A read deadline in the past ends net/http's last read of the body at
	// once; the answer is written all the same.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	return true
}

// uploadWriteGrace is how long after its read deadline an upload's answer
// may take to be written (the server's write timeout counts from the
// request's start, which a slow upload may outlast).
const uploadWriteGrace = 2 * time.Minute

// guardBody sets how long the admitted request's body may take to arrive.
// The server's read timeout, which covers the whole request, is lifted once
// the body is read (at once without a body): from then on it would only
// cancel the request's context in the middle of a long answer (a download,
// a forwarded request). Upload routes get a minimum rate instead of the
// read timeout.
func (s *Server) guardBody(w http.ResponseWriter, r *http.Request, upload bool) {
	rc := http.NewResponseController(w)
	if r.Body == nil || r.Body == http.NoBody {
		_ = rc.SetReadDeadline(time.Time{})
		return
	}
	b := &deadlineBody{ReadCloser: r.Body, rc: rc}
	if upload {
		b.start, b.grace, b.rate = time.Now(), s.cfg.ReadTimeout, float64(s.cfg.UploadMinRate)
		b.extend()
	}
	r.Body = b
}

// deadlineBody is a request body that lifts the read deadline at its end.
// With a rate, its read deadline is start + grace + (bytes read so far) /
// rate: the client keeps the connection as long as its average rate stays
// above rate, with grace to start and to stall.
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	rate     float64 // bytes per second; 0: the server's read timeout holds
	n        int64
	deadline time.Time
	done     bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	} else if b.rate > 0 && !b.done {
		b.extend()
	}
	return n, err
}

// extend moves the read deadline to what the bytes read so far earn; it
// asks the connection only when the deadline moved by a second or more.
func (b *deadlineBody) extend() {
	d := b.start.Add(b.grace + time.Duration(float64(b.n)/b.rate*float64(time.Second)))
	if !b.deadline.IsZero() && d.Sub(b.deadline) < time.Second {
		return
	}
	if b.rc.SetReadDeadline(d) == nil {
		b.deadline = d
		_ = b.rc.SetWriteDeadline(d.Add(uploadWriteGrace))
	}
}
