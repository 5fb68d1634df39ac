package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/wabsync/wabsync/internal/safehttp"
)

// DefaultSchedule is the delay before each retry after a failed attempt
// (API.md, "Webhooks"): 5 s, 1 min, 5 min, 30 min, 2 h, 6 h, then every
// 12 h. Each delay gets ±Jitter.
var DefaultSchedule = []time.Duration{
	5 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 6 * time.Hour, 12 * time.Hour,
}

// Jitter is the fraction by which each retry delay is randomly shortened or
// lengthened, so that the retries of many deliveries that failed together
// spread out.
const Jitter = 0.2

// Backoff returns the delay before the next attempt after n failed attempts
// (n ≥ 1) with schedule (DefaultSchedule when empty): its n-th entry, or
// its last one past the end, with ±Jitter.
func Backoff(schedule []time.Duration, n int) time.Duration {
	if len(schedule) == 0 {
		schedule = DefaultSchedule
	}
	if n < 1 {
		n = 1
	}
	return jitter(schedule[min(n, len(schedule))-1])
}

// ProbeDelay returns how long an endpoint whose circuit is open (it failed
// again and again) waits before its next probe, having failed for
// failingFor: an eighth of that, so that an outage is noticed to be over
// within about an eighth of its length, but at least the schedule's first
// delay and at most its last, with ±Jitter. A probe is one attempt and one
// write, however many deliveries wait.
func ProbeDelay(schedule []time.Duration, failingFor time.Duration) time.Duration {
	if len(schedule) == 0 {
		schedule = DefaultSchedule
	}
	return jitter(min(max(failingFor/8, schedule[0]), schedule[len(schedule)-1]))
}

// jitter lengthens or shortens d by up to Jitter, at random.
func jitter(d time.Duration) time.Duration {
	f := 1 + Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// attemptError turns a failed request's error into a short message that is
// safe to store and show: it names the kind of failure, never a secret, an
// address the receiver's network resolved or the text of a library error.
func attemptError(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	var netErr net.Error
	switch {
	case errors.Is(err, safehttp.ErrBlockedAddress):
		return "address not allowed (private, loopback, link-local or reserved)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case errors.As(err, &dnsErr):
		return "host not found"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return "TLS certificate not accepted"
	case errors.As(err, &recordErr), errors.As(err, &alertErr):
		return "TLS handshake failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the receiver"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "request failed"
}
