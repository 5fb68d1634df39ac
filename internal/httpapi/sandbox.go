package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/engine/sandbox"
)

// SandboxService is the admin side of the sandbox network.
type SandboxService interface {
	Scan(ctx context.Context, qr string) (string, error)
	Drop(sessionID string, d time.Duration) error
	Deliver(ctx context.Context, sessionID string, p *sandbox.Packet) error
}

// SetSandbox enables the sandbox routes' service.
func (s *Server) SetSandbox(sb SandboxService) { s.sandbox = sb }

func (s *Server) sandboxRoutes() []route {
	return []route{
		{"POST /api/v1/sandbox/scan", adminOnly, s.handleSandboxScan},
		{"POST /api/v1/sandbox/inbound", adminOnly, s.handleSandboxInbound},
		{"POST /api/v1/sandbox/sessions/{session}/drop", adminOnly, s.handleSandboxDrop},
	}
}

type scanRequest struct {
	QR string `json:"qr"`
}

func (s *Server) handleSandboxScan(w http.ResponseWriter, r *http.Request) error {
	raw, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	var req scanRequest
	if err := decodeStrict(raw, &req); err != nil {
		return err
	}
	if req.QR == "" || len(req.QR) > 1000 {
		return fieldError(wabsync.EValidation, "qr", "is required: the raw QR string from GET …/qr")
	}
	if done, err := s.forward(w, r, sandbox.SessionOfQR(req.QR), raw); done || err != nil {
		return err
	}
	id, err := s.sandbox.Scan(r.Context(), req.QR)
	if err != nil {
		return err
	}
	sess, err := s.db.CachedSession(r.Context(), id)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Scanned; the session is linking", sess)
	return nil
}

type dropRequest struct {
	DownForMS int64 `json:"down_for_ms"`
}

func (s *Server) handleSandboxDrop(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	var req dropRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	if req.DownForMS < 0 || req.DownForMS > 600000 {
		return fieldError(wabsync.EValidation, "down_for_ms", "must be from 0 to 600000")
	}
	sess, err := s.db.CachedSession(r.Context(), id)
	if err != nil {
		return err
	}
	if sess.Engine != wabsync.EngineSandbox {
		return wabsync.Errorf(wabsync.EConflict, "Only sandbox sessions can be dropped.")
	}
	if err := s.sandbox.Drop(id, time.Duration(req.DownForMS)*time.Millisecond); err != nil {
		return err
	}
	respond(w, http.StatusOK, "Dropped", map[string]any{"session_id": id, "down_for_ms": req.DownForMS})
	return nil
}

type sandboxInboundRequest struct {
	Session  string            `json:"session"`
	From     string            `json:"from"`
	Kind     string            `json:"kind"`
	Text     string            `json:"text"`
	Caption  string            `json:"caption"`
	Location *wabsync.Location `json:"location"`
	Contacts []wabsync.Contact `json:"contacts"`
	Base64   string            `json:"base64"`
	Filename string            `json:"filename"`
	MimeType string            `json:"mime_type"`
	ReplyTo  string            `json:"reply_to"`
}

// handleSandboxInbound delivers a message from any number to a sandbox
// session, as if someone had sent it on WhatsApp.
func (s *Server) handleSandboxInbound(w http.ResponseWriter, r *http.Request) error {
	raw, err := s.readBody(w, r, s.cfg.MaxUpload/3*4+s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	var req sandboxInboundRequest
	if err := decodeStrict(raw, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	from, ok := normalizePhone(req.From)
	if !ok {
		v.Add("from", "must be a phone number in E.164 form")
	}
	if req.Kind == "" {
		req.Kind = wabsync.KindText
	}
	switch {
	case req.Kind == wabsync.KindText:
		if strings.TrimSpace(req.Text) == "" {
			v.Add("text", "is required for kind text")
		}
	case req.Kind == wabsync.KindLocation:
		if req.Location == nil || req.Location.Latitude < -90 || req.Location.Latitude > 90 || req.Location.Longitude < -180 || req.Location.Longitude > 180 {
			v.Add("location", "needs latitude (-90..90) and longitude (-180..180)")
		}
	case req.Kind == wabsync.KindContact:
		if len(req.Contacts) == 0 || len(req.Contacts) > 10 {
			v.Add("contacts", "needs 1 to 10 contacts")
		}
	case wabsync.IsMediaKind(req.Kind):
		if req.Base64 == "" {
			v.Add("base64", "is required for file kinds")
		}
	default:
		v.Add("kind", "must be text, image, video, audio, voice, document, sticker, location or contact")
	}
	if req.Session == "" {
		v.Add("session", "is required")
	}
	if err := v.Err(); err != nil {
		return err
	}
	sess, err := s.db.CachedSession(r.Context(), req.Session)
	if err != nil {
		return err
	}
	if sess.Engine != wabsync.EngineSandbox {
		return fieldError(wabsync.EValidation, "session", "is not a sandbox session")
	}
	if done, err := s.forward(w, r, sess.ID, raw); done || err != nil {
		return err
	}
	if s.deps.Sessions.Engine(sess.ID) == nil {
		return notConnected(sess.ID)
	}
	p := &sandbox.Packet{From: from, Kind: req.Kind, Text: req.Text, Caption: req.Caption, Location: req.Location,
		Contacts: req.Contacts, ReplyTo: req.ReplyTo, PushName: "Sandbox " + from}
	if wabsync.IsMediaKind(req.Kind) {
		if s.media.Blobs == nil {
			return wabsync.Errorf(wabsync.EUnavailable, "Media storage is not configured.")
		}
		b, err := s.media.Blobs.PutBase64(r.Context(), req.Base64, s.cfg.MaxUpload)
		if err != nil {
			return err
		}
		mt := req.MimeType
		if mt == "" {
			mt = b.MimeType
		}
		p.Media = &wabsync.Media{MimeType: mt, Size: b.Size, SHA256: b.SHA256, Filename: req.Filename}
		p.BlobKey = b.Key
	}
	if err := s.sandbox.Deliver(r.Context(), sess.ID, p); err != nil {
		var ee *wabsync.EngineError
		if errors.As(err, &ee) {
			return notConnected(sess.ID)
		}
		return err
	}
	m, err := s.db.FindByWAID(r.Context(), sess.ID, p.WAID)
	if err != nil {
		return err
	}
	if m == nil {
		return wabsync.Errorf(wabsync.EConflict, "The session did not store the message.")
	}
	respond(w, http.StatusCreated, "Delivered", s.shown(m))
	return nil
}
