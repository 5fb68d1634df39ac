package httpapi

import (
	"context"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/safehttp"
	"github.com/wabsync/wabsync/internal/session"
)

// SessionService runs sessions (implemented by *session.Manager).
type SessionService interface {
	Create(ctx context.Context, in session.CreateInput) (*wabsync.Session, string, error)
	Connect(ctx context.Context, id string) (*wabsync.Session, error)
	Disconnect(ctx context.Context, id string) (*wabsync.Session, error)
	Logout(ctx context.Context, id string) (*wabsync.Session, error)
	Restart(ctx context.Context, id string) (*wabsync.Session, error)
	Delete(ctx context.Context, id string) error
	PairCode(ctx context.Context, id, phone string) (string, error)
	RotateToken(ctx context.Context, id string) (string, error)
	// Engine returns the engine of a connected session on this node, or nil.
	Engine(id string) wabsync.Engine
	// CancelQueued runs cancel (which fails a message it finds queued)
	// while the session's sender is between sends.
	CancelQueued(ctx context.Context, id string, cancel func() error) error
}

func (s *Server) sessionRoutes() []route {
	return []route{
		{"POST /api/v1/sessions", adminOnly, s.handleCreateSession},
		{"GET /api/v1/sessions", adminOnly, s.handleListSessions},
		{"GET /api/v1/sessions/{session}", sessionAuth, s.handleGetSession},
		{"PATCH /api/v1/sessions/{session}", sessionAuth, s.handleUpdateSession},
		{"DELETE /api/v1/sessions/{session}", adminOnly, s.handleDeleteSession},
		{"POST /api/v1/sessions/{session}/connect", sessionAuth, s.sessionAction("Connecting", SessionService.Connect)},
		{"POST /api/v1/sessions/{session}/disconnect", sessionAuth, s.sessionAction("Disconnected", SessionService.Disconnect)},
		{"POST /api/v1/sessions/{session}/logout", sessionAuth, s.sessionAction("Logged out", SessionService.Logout)},
		{"POST /api/v1/sessions/{session}/restart", sessionAuth, s.sessionAction("Restarting", SessionService.Restart)},
		{"GET /api/v1/sessions/{session}/qr", sessionAuth, s.handleQR},
		{"POST /api/v1/sessions/{session}/pair-code", sessionAuth, s.handlePairCode},
		{"POST /api/v1/sessions/{session}/token", sessionAuth, s.handleRotateToken},
		{"GET /api/v1/sessions/{session}/events", sessionAuth, s.handleEvents},
	}
}

type createSessionRequest struct {
	Name     string                `json:"name"`
	Engine   string                `json:"engine"`
	Config   wabsync.SessionConfig `json:"config"`
	Metadata map[string]any        `json:"metadata"`
}

type updateSessionRequest struct {
	Name     *string                `json:"name"`
	Config   *wabsync.SessionConfig `json:"config"`
	Metadata map[string]any         `json:"metadata"`
}

const maxMetadataBytes = 16 << 10

func validateName(v wabsync.ValidationErrors, name string) {
	if strings.TrimSpace(name) == "" {
		v.Add("name", "is required")
	} else if utf8.RuneCountInString(name) > 100 {
		v.Add("name", "must be at most 100 characters")
	}
}

func validateConfig(v wabsync.ValidationErrors, c *wabsync.SessionConfig) {
	if c.Phone != "" {
		if p, ok := normalizePhone(c.Phone); ok {
			c.Phone = p
		} else {
			v.Add("config.phone", "must be a phone number in E.164 form")
		}
	}
	if c.FailConnects < 0 || c.FailConnects > 100 {
		v.Add("config.fail_connects", "must be from 0 to 100")
	}
	if c.SendRate < 0 || c.SendRate > 1000 {
		v.Add("config.send_rate", "must be from 0 to 1000 messages per second")
	}
	if c.SendBurst < 0 || c.SendBurst > 1000 {
		v.Add("config.send_burst", "must be from 0 to 1000")
	}
}

// validateProxy checks config.proxy with the guard of webhook and media
// URLs: a loopback, private, link-local or metadata address is refused
// (unless the operator allows private URLs), without dialling it.
func (s *Server) validateProxy(r *http.Request, v wabsync.ValidationErrors, proxy string) error {
	if proxy == "" {
		return nil
	}
	err := safehttp.CheckProxyURL(r.Context(), proxy, s.cfg.AllowPrivateURLs)
	if err == nil {
		return nil
	}
	if wabsync.ErrorCode(err) != wabsync.EValidation {
		return err
	}
	v.Add("config.proxy", wabsync.ErrorMessage(err))
	return nil
}

func validateMetadata(v wabsync.ValidationErrors, md map[string]any) {
	if md == nil {
		return
	}
	if b, _ := jsonMarshal(md); len(b) > maxMetadataBytes {
		v.Add("metadata", "must be at most 16 KiB of JSON")
	}
}

func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) error {
	var req createSessionRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	validateName(v, req.Name)
	if req.Engine == "" {
		req.Engine = wabsync.EngineWhatsmeow
	}
	if req.Engine != wabsync.EngineWhatsmeow && req.Engine != wabsync.EngineSandbox {
		v.Add("engine", `must be "whatsmeow" or "sandbox"`)
	}
	validateConfig(v, &req.Config)
	if err := s.validateProxy(r, v, req.Config.Proxy); err != nil {
		return err
	}
	validateMetadata(v, req.Metadata)
	if err := v.Err(); err != nil {
		return err
	}
	sess, tok, err := s.deps.Sessions.Create(r.Context(), session.CreateInput{Name: req.Name, Engine: req.Engine, Config: req.Config, Metadata: req.Metadata})
	if err != nil {
		return err
	}
	respond(w, http.StatusCreated, "Session created", map[string]any{"session": sess, "token": tok})
	return nil
}

func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	f := wabsync.SessionFilter{Page: p}
	if st := r.URL.Query().Get("status"); st != "" {
		f.Status = wabsync.SessionStatus(st)
		if !f.Status.Valid() {
			return fieldError(wabsync.EBadRequest, "status", "must be one of stopped, starting, scan_qr, connected, reconnecting, logged_out, failed")
		}
	}
	l, err := s.db.ListSessions(r.Context(), f)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Sessions", listData(l))
	return nil
}

func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	sess, err := s.db.CachedSession(r.Context(), id)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Session", sess)
	return nil
}

func (s *Server) handleUpdateSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	var req updateSessionRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	if req.Name != nil {
		validateName(v, *req.Name)
	}
	if req.Config != nil {
		validateConfig(v, req.Config)
		if err := s.validateProxy(r, v, req.Config.Proxy); err != nil {
			return err
		}
	}
	validateMetadata(v, req.Metadata)
	if err := v.Err(); err != nil {
		return err
	}
	sess, err := s.db.ModifySession(r.Context(), id, func(_ *storeTx, sess *wabsync.Session) error {
		if req.Name != nil {
			sess.Name = *req.Name
		}
		if req.Config != nil {
			sess.Config = *req.Config
		}
		if req.Metadata != nil {
			sess.Metadata = req.Metadata
		}
		return nil
	})
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Session updated", sess)
	return nil
}

func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	if err := s.deps.Sessions.Delete(r.Context(), id); err != nil {
		return err
	}
	s.ForgetSessionTokens(id)
	respond(w, http.StatusOK, "Session deleted", map[string]any{"id": id, "deleted": true})
	return nil
}

func (s *Server) sessionAction(msg string, act func(SessionService, context.Context, string) (*wabsync.Session, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := sessionParam(r)
		if err != nil {
			return err
		}
		if _, err := s.readBody(w, r, s.cfg.MaxJSON); err != nil {
			return err
		}
		sess, err := act(s.deps.Sessions, r.Context(), id)
		if err != nil {
			return err
		}
		respond(w, http.StatusOK, msg, sess)
		return nil
	}
}

func (s *Server) handleQR(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	sess, err := s.db.CachedSession(r.Context(), id)
	if err != nil {
		return err
	}
	qr, exp, err := s.db.GetQR(r.Context(), id)
	if err != nil {
		return err
	}
	if sess.Status != wabsync.StatusScanQR || qr == "" {
		return &wabsync.Error{Code: wabsync.EConflict, Message: "The session is not waiting for a QR scan (status " + string(sess.Status) + "); connect it first.",
			Details: map[string]string{"status": string(sess.Status)}}
	}
	if strings.Contains(r.Header.Get("Accept"), "image/png") {
		png, err := qrcode.Encode(qr, qrcode.Medium, 320)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(png)
		return nil
	}
	w.Header().Set("Cache-Control", "no-store")
	respond(w, http.StatusOK, "QR code", map[string]any{"qr": qr, "expires_at": exp})
	return nil
}

type pairCodeRequest struct {
	Phone string `json:"phone"`
}

func (s *Server) handlePairCode(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	var req pairCodeRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	phone, ok := normalizePhone(req.Phone)
	if !ok {
		return fieldError(wabsync.EValidation, "phone", "must be a phone number in E.164 form")
	}
	code, err := s.deps.Sessions.PairCode(r.Context(), id, phone)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Enter this code on the phone: WhatsApp → Linked devices → Link with phone number", map[string]string{"code": code})
	return nil
}

func (s *Server) handleRotateToken(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	if _, err := s.readBody(w, r, s.cfg.MaxJSON); err != nil {
		return err
	}
	tok, err := s.deps.Sessions.RotateToken(r.Context(), id)
	if err != nil {
		return err
	}
	s.ForgetSessionTokens(id)
	respond(w, http.StatusOK, "Token rotated; the old token no longer works", map[string]string{"token": tok})
	return nil
}

// normalizePhone accepts E.164 with spaces, dashes, dots and brackets, and
// returns "+" and digits.
func normalizePhone(in string) (string, bool) {
	var b strings.Builder
	for i, c := range strings.TrimSpace(in) {
		switch {
		case c == '+' && i == 0:
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' || c == '-' || c == '(' || c == ')' || c == '.':
		default:
			return "", false
		}
	}
	d := b.String()
	if len(d) < 7 || len(d) > 15 || d[0] == '0' {
		return "", false
	}
	return "+" + d, true
}
