package safehttp

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/wabsync/wabsync"
)

// MaxURLLength is the longest URL CheckURL accepts.
const MaxURLLength = 2048

// CheckURL validates a URL a user gives (a webhook endpoint, media to fetch)
// when it is given: an absolute http or https URL of at most MaxURLLength
// bytes, with a host, a valid port if any, and no user:password part. Unless
// allowPrivate, the host is resolved and the URL refused when the host does
// not resolve or when any of its addresses is blocked (IsBlocked). With
// allowPrivate no resolution is made.
//
// Errors: a problem with the URL is a *wabsync.Error with code
// VALIDATION_ERROR whose Message is a short phrase meant for the field's entry
// in the details ("must be an absolute http or https URL"):
//
//	if err := safehttp.CheckURL(ctx, in.URL, allow); err != nil {
//		if wabsync.ErrorCode(err) != wabsync.EValidation {
//			return err
//		}
//		v.Add("url", wabsync.ErrorMessage(err))
//	}
//
// A blocked address also matches ErrBlockedAddress (errors.Is). Only ctx's own
// error (cancelled, deadline) comes back as something else.
//
// CheckURL is an early answer, not the protection: the address is checked
// again each time a client from NewClient dials it.
func CheckURL(ctx context.Context, raw string, allowPrivate bool) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	if allowPrivate {
		return nil
	}
	return checkHost(ctx, u.Hostname())
}

// checkHost resolves host and refuses it when it does not resolve or when
// any of its addresses is blocked.
func checkHost(ctx context.Context, host string) error {
	ips, err := resolve(ctx, "tcp", host)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return invalid("host does not resolve")
	}
	for _, ip := range ips {
		if IsBlocked(ip) {
			return fmt.Errorf("%w: %s resolves to %s: %w", ErrBlockedAddress, host, ip,
				invalid("must not point to a private, loopback, link-local or reserved address"))
		}
	}
	return nil
}

// parseURL does CheckURL's checks that need no network.
func parseURL(raw string) (*url.URL, error) {
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
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, invalid("must be an absolute http or https URL")
	}
	if u.User != nil {
		return nil, invalid("must not contain a user name or password")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, invalid("must have a host")
	}
	if err := checkPortAndZone(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkPortAndZone refuses an invalid port and an IPv6 zone, which names
// an interface of this machine.
func checkPortAndZone(u *url.URL) error {
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return invalid("has an invalid port")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return invalid("has an invalid port")
	}
	if strings.Contains(u.Hostname(), "%") {
		return invalid("must not contain an IPv6 zone")
	}
	return nil
}

func invalid(msg string) *wabsync.Error {
	return &wabsync.Error{Code: wabsync.EValidation, Message: msg}
}
