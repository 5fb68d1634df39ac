package safehttp

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CheckProxyURL validates a proxy URL a user gives (a session's
// config.proxy) when it is given: an http, https or socks5 URL of at most
// MaxURLLength bytes with a host, a valid port if any, and nothing after the
// host but an optional "/". A user:password part is allowed (proxies take
// credentials). Unless allowPrivate, the host is resolved and the URL refused
// when it does not resolve or when any of its addresses is blocked
// (IsBlocked): a session token must not turn the server into a client of its
// own private network. Errors are as CheckURL's.
//
// Like CheckURL, this is the early answer; the dialer from NewDialer checks
// the address again each time the proxy is dialled.
func CheckProxyURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := parseProxyURL(raw)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	return checkHost(ctx, u.Hostname())
}

// parseProxyURL does CheckProxyURL's checks that need no network.
func parseProxyURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, invalid("is required")
	}
	if len(raw) > MaxURLLength {
		return nil, invalid("must be at most " + strconv.Itoa(MaxURLLength) + " characters")
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, invalid("must not contain spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid("is not a valid URL")
	}
	switch u.Scheme {
	case "http", "https", "socks5":
	default:
		return nil, invalid("must be an http://, https:// or socks5:// URL")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, invalid("must have a host")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, invalid("must be only a scheme, a host and a port")
	}
	if err := checkPortAndZone(u); err != nil {
		return nil, err
	}
	return u, nil
}

// Dialer dials TCP connections to user-given addresses (a session's proxy)
// with NewClient's check: the host is resolved once, every address checked,
// and only checked addresses are dialled, by number, with the socket's
// address checked again just before connect. A refused address is an error
// that wraps ErrBlockedAddress, and nothing is dialled.
type Dialer struct {
	d *dialer
}

// NewDialer returns a Dialer; allowPrivate (WABSYNC_ALLOW_PRIVATE_URLS)
// turns the check off; timeout bounds one dial (10 s when zero).
func NewDialer(allowPrivate bool, timeout time.Duration) *Dialer {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &dialer{net: &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}}
	if !allowPrivate {
		d.blocked = func(ap netip.AddrPort) bool { return IsBlocked(ap.Addr()) }
		d.net.Control = d.control
	}
	return &Dialer{d: d}
}

// DialContext dials address ("host:port") on network after the check.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.d.DialContext(ctx, network, address)
}

// Dial is DialContext without a context (golang.org/x/net/proxy.Dialer).
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.d.DialContext(context.Background(), network, address)
}
