// Package safehttp makes outbound HTTP requests to URLs that users give
// (webhook endpoints, media to fetch) without letting those URLs reach the
// server's own private networks: loopback, RFC 1918, link-local and cloud
// metadata addresses, and the like (see IsBlocked).
//
// The check happens where it cannot be dodged: at dial time, on the addresses
// the host name actually resolved to, for the first request and for every
// redirect. A name that resolves to a public address when a webhook is created
// and to 127.0.0.1 later (DNS rebinding) is refused when it is dialled.
// CheckURL repeats the check early, so that a bad URL is refused when it is
// given rather than on its first use.
package safehttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// ErrBlockedAddress is wrapped by every error caused by a URL whose host is
// (or resolves to) an address that IsBlocked refuses: dial errors of clients
// from NewClient, and CheckURL's errors.
var ErrBlockedAddress = errors.New("safehttp: address is not allowed (loopback, private, link-local or reserved)")

// ErrTooManyRedirects is wrapped by the error of a request that was
// redirected more than Options.MaxRedirects times.
var ErrTooManyRedirects = errors.New("safehttp: too many redirects")

// DefaultTimeout is the request timeout of a client whose Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Options configures NewClient.
type Options struct {
	// AllowPrivate lets requests reach blocked addresses
	// (WABSYNC_ALLOW_PRIVATE_URLS): for tests and local development only.
	AllowPrivate bool
	// Timeout bounds a whole request, from dialling to reading the last byte
	// of the body. Zero means DefaultTimeout.
	Timeout time.Duration
	// MaxRedirects is how many redirects a request follows. Zero follows
	// none: the 3xx response itself is returned (webhook deliveries then count
	// it as a failure). Past the limit, the request fails with
	// ErrTooManyRedirects. Media fetching uses a few (3).
	MaxRedirects int
	// MaxConnsPerHost bounds the connections to one host (zero: no bound).
	// As many idle connections per host are kept for reuse (16 when zero).
	MaxConnsPerHost int
}

// NewClient returns an HTTP client for user-given URLs. It:
//   - refuses, at dial time, every address IsBlocked refuses (unless
//     AllowPrivate): the host is resolved once, every resolved address is
//     checked, and only then is a checked address dialled, by number, so
//     that no second resolution can change the answer; the socket's address
//     is checked again just before connect;
//   - applies the same check to every redirect, and follows at most
//     MaxRedirects of them, only to http and https URLs without credentials;
//   - never uses a proxy (a proxy from the environment would connect on
//     the client's behalf and bypass the check);
//   - keeps connections alive for reuse, bounded by MaxConnsPerHost;
//   - does not ask for compressed responses, so that Content-Length is the
//     size of what is read;
//   - bounds the whole request by Timeout.
func NewClient(o Options) *http.Client {
	blocked := func(ap netip.AddrPort) bool { return IsBlocked(ap.Addr()) }
	if o.AllowPrivate {
		blocked = nil
	}
	return newClient(o, blocked)
}

// newClient is NewClient with the address check given; nil checks nothing.
// Tests use it to pretend that some loopback servers are public.
func newClient(o Options, blocked func(netip.AddrPort) bool) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	idle := o.MaxConnsPerHost
	if idle <= 0 {
		idle = 16
	}
	d := &dialer{
		blocked: blocked,
		net: &net.Dialer{
			Timeout:   min(timeout, 10*time.Second),
			KeepAlive: 30 * time.Second,
		},
	}
	if blocked != nil {
		d.net.Control = d.control
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    idle,
		MaxConnsPerHost:        o.MaxConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: redirectPolicy(o.MaxRedirects),
	}
}

func redirectPolicy(max int) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if max <= 0 {
			return http.ErrUseLastResponse
		}
		if len(via) > max {
			return fmt.Errorf("%w (%d)", ErrTooManyRedirects, max)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("safehttp: redirect to a %q URL refused", req.URL.Scheme)
		}
		if req.URL.User != nil {
			return errors.New("safehttp: redirect to a URL with credentials refused")
		}
		// The target's addresses are checked when it is dialled.
		return nil
	}
}

// dialer resolves, checks and dials.
type dialer struct {
	blocked func(netip.AddrPort) bool // nil: allow everything
	net     *net.Dialer
}

// DialContext resolves address's host, refuses it when any of its addresses
// is blocked, and dials the checked addresses in turn until one connects.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d.blocked == nil {
		return d.net.DialContext(ctx, network, address)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("safehttp: bad port in %q", address)
	}
	ips, err := resolve(ctx, network, host)
	if err != nil {
		return nil, err
	}
	aps := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
		if d.blocked(ap) {
			return nil, &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(ap),
				Err: fmt.Errorf("%w: %s resolves to %s", ErrBlockedAddress, host, ap.Addr())}
		}
		aps = append(aps, ap)
	}
	var firstErr error
	for _, ap := range aps {
		c, err := d.net.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// control checks the address a socket is about to connect to. DialContext
// only dials checked addresses; this is the second lock on the same door.
func (d *dialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrBlockedAddress, address)
	}
	if d.blocked(ap) {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, ap.Addr())
	}
	return nil
}

// resolve returns the addresses of host for network ("tcp", "tcp4", "tcp6"):
// the address itself when host is an IP literal.
func resolve(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	ipNet := "ip"
	switch network {
	case "tcp4":
		ipNet = "ip4"
	case "tcp6":
		ipNet = "ip6"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	return ips, nil
}
