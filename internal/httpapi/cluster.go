package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/wabsync/wabsync"
)

// forwardedHeader marks a request one node forwarded to another, so that it
// is never forwarded again.
const forwardedHeader = "X-Wabsync-Forwarded-By"

// ownerRoutes are the routes that act on a session's engine, and so must run
// on the node that owns the session. Another node forwards them there.
var ownerRoutes = map[string]bool{
	"POST /api/v1/sessions/{session}/connect":            true,
	"POST /api/v1/sessions/{session}/disconnect":         true,
	"POST /api/v1/sessions/{session}/logout":             true,
	"POST /api/v1/sessions/{session}/restart":            true,
	"POST /api/v1/sessions/{session}/pair-code":          true,
	"DELETE /api/v1/sessions/{session}":                  true,
	"PATCH /api/v1/sessions/{session}/messages/{id}":     true,
	"DELETE /api/v1/sessions/{session}/messages/{id}":    true,
	"POST /api/v1/sessions/{session}/messages/{id}/read": true,
	"GET /api/v1/sessions/{session}/messages/{id}/media": true,
	"POST /api/v1/sessions/{session}/contacts/check":     true,
	"POST /api/v1/sessions/{session}/presence":           true,
	"POST /api/v1/sandbox/sessions/{session}/drop":       true,
}

// SetNode tells the server which node it is, so that requests for sessions
// owned by another node are forwarded there.
func (s *Server) SetNode(nodeID string) {
	s.nodeID = nodeID
	s.proxyTransport = &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 5 * time.Minute}
}

// forward sends the request to the node that owns session, when that is
// another live node, and reports whether it did. body, if not nil, is the
// request body already read.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, sessionID string, body []byte) (bool, error) {
	if s.nodeID == "" || r.Header.Get(forwardedHeader) != "" || sessionID == "" {
		return false, nil
	}
	owner, addr, err := s.db.LeaseOwner(r.Context(), sessionID)
	if err != nil || owner == "" || owner == s.nodeID || addr == "" {
		return false, err
	}
	target, err := url.Parse(addr)
	if err != nil {
		return false, nil
	}
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	failed := false
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(forwardedHeader, s.nodeID)
			pr.Out.Header.Set("X-Request-Id", requestIDFrom(r.Context()))
		},
		Transport: s.proxyTransport,
		ModifyResponse: func(resp *http.Response) error {
			// The owner's own request id and rate-limit headers are replaced
			// by this node's.
			resp.Header.Del("X-Request-Id")
			for _, h := range []string{"X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} {
				resp.Header.Del(h)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failed = true
			s.logger.WarnContext(r.Context(), "forwarding to the owner node failed", "owner", owner, "err", err)
		},
	}
	p.ServeHTTP(w, r)
	if failed {
		return true, wabsync.Errorf(wabsync.EUnavailable, "The node that runs this session did not answer; retry shortly.")
	}
	return true, nil
}
