package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/media"
)

// MediaDeps are the media services the message handlers use.
type MediaDeps struct {
	Blobs   *media.Store
	Fetcher *media.Fetcher
	Signer  *media.Signer
}

// SetMedia sets the media services.
func (s *Server) SetMedia(m MediaDeps) { s.media = m }

func notConnected(sess string) error {
	return &wabsync.Error{Code: wabsync.ESessionNotConnected, Message: "The session is not connected; connect it first.",
		Details: map[string]string{"session": sess}}
}

// connectedEngine returns the engine of a connected session or 409.
func (s *Server) connectedEngine(id string) (wabsync.Engine, error) {
	eng := s.deps.Sessions.Engine(id)
	if eng == nil {
		return nil, notConnected(id)
	}
	return eng, nil
}

func engineErr(err error) error {
	var ee *wabsync.EngineError
	if errors.As(err, &ee) {
		return &wabsync.Error{Code: wabsync.EConflict, Message: "WhatsApp refused: " + ee.Message, Details: map[string]string{"engine_code": ee.Code}}
	}
	return err
}

type editMessageRequest struct {
	Text string `json:"text"`
}

// lockedMessage reads the message of the request under its change lock, so
// that the edits and revokes of one message run one at a time, each seeing
// what the one before it did: nothing is sent for a message once a revoke
// went out, and a revoke goes out once. These routes run on the session's
// owner node, so a lock in this process covers every node.
func (s *Server) lockedMessage(r *http.Request) (*wabsync.Message, func(), error) {
	m, err := s.sessionMessage(r)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := s.msgChanges.Lock(r.Context(), m.ID)
	if err != nil {
		return nil, nil, err
	}
	m, err = s.db.GetMessage(r.Context(), m.SessionID, m.ID)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return m, unlock, nil
}

func errRevoked() error {
	return wabsync.Errorf(wabsync.EConflict, "The message was revoked; it cannot be changed any more.")
}

func (s *Server) handleEditMessage(w http.ResponseWriter, r *http.Request) error {
	var req editMessageRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	m, unlock, err := s.lockedMessage(r)
	if err != nil {
		return err
	}
	defer unlock()
	if strings.TrimSpace(req.Text) == "" || utf8.RuneCountInString(req.Text) > maxText {
		return fieldError(wabsync.EValidation, "text", "is required, at most 65536 characters")
	}
	if m.Revoked {
		return errRevoked()
	}
	if m.Direction != wabsync.DirectionOut || m.Kind != wabsync.KindText {
		return wabsync.Errorf(wabsync.EConflict, "Only the text of an outbound text message can be edited.")
	}
	if m.Status.Rank() < wabsync.MsgSent.Rank() || m.Status == wabsync.MsgFailed {
		return wabsync.Errorf(wabsync.EConflict, "The message was not sent (status %s); only sent messages can be edited.", m.Status)
	}
	eng, err := s.connectedEngine(m.SessionID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if _, err := eng.Send(ctx, &wabsync.OutgoingMessage{WAID: wabsync.NewWAID(), To: m.Chat, Kind: wabsync.KindText,
		Edit: &wabsync.OutgoingEdit{Target: wabsync.MessageTarget{WAID: m.WAID, Sender: m.FromJID, FromMe: true}, Text: req.Text}}); err != nil {
		return engineErr(err)
	}
	m, err = s.db.ModifyMessage(r.Context(), m.SessionID, m.ID, wabsync.EventMessageEdited, func(m *wabsync.Message) error {
		m.Text, m.Edited = req.Text, true
		return nil
	})
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Message edited", s.shown(m))
	return nil
}

// handleRevokeMessage revokes a message for everyone. Revoking a revoked
// message answers 200 with it and sends nothing again.
func (s *Server) handleRevokeMessage(w http.ResponseWriter, r *http.Request) error {
	m, unlock, err := s.lockedMessage(r)
	if err != nil {
		return err
	}
	defer unlock()
	if m.Direction != wabsync.DirectionOut || m.Status == wabsync.MsgFailed && !m.Revoked {
		return wabsync.Errorf(wabsync.EConflict, "Only outbound messages that did not fail can be revoked.")
	}
	if m.Revoked {
		respond(w, http.StatusOK, "Message revoked", s.shown(m))
		return nil
	}
	if m.Status == wabsync.MsgQueued {
		done, err := s.revokeQueued(r.Context(), m)
		if err != nil {
			return err
		}
		if done != nil {
			respond(w, http.StatusOK, "Message revoked", s.shown(done))
			return nil
		}
		// The session sent it meanwhile: revoke it on the network.
		if m, err = s.db.GetMessage(r.Context(), m.SessionID, m.ID); err != nil {
			return err
		}
		if m.Status == wabsync.MsgFailed {
			return wabsync.Errorf(wabsync.EConflict, "The message failed meanwhile; there is nothing to revoke.")
		}
	}
	eng, err := s.connectedEngine(m.SessionID)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if _, err := eng.Send(ctx, &wabsync.OutgoingMessage{WAID: wabsync.NewWAID(), To: m.Chat, Kind: m.Kind,
		Revoke: &wabsync.MessageTarget{WAID: m.WAID, Sender: m.FromJID, FromMe: true}}); err != nil {
		return engineErr(err)
	}
	m, err = s.db.ModifyMessage(r.Context(), m.SessionID, m.ID, wabsync.EventMessageRevoked, func(m *wabsync.Message) error {
		m.Revoked = true
		return nil
	})
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Message revoked", s.shown(m))
	return nil
}

// errSentMeanwhile tells revokeQueued that the sender took the message.
var errSentMeanwhile = errors.New("sent meanwhile")

// revokeQueued fails a message that is still queued, so that it never goes
// out, while the session's sender is between sends. It returns nil and no
// error when the message was sent meanwhile (it must be revoked on the
// network then).
func (s *Server) revokeQueued(ctx context.Context, m *wabsync.Message) (*wabsync.Message, error) {
	var out *wabsync.Message
	err := s.deps.Sessions.CancelQueued(ctx, m.SessionID, func() error {
		var err error
		out, err = s.db.ModifyMessage(ctx, m.SessionID, m.ID, wabsync.EventMessageRevoked, func(m *wabsync.Message) error {
			if m.Status != wabsync.MsgQueued {
				return errSentMeanwhile
			}
			m.Revoked = true
			m.Status = wabsync.MsgFailed
			m.Error = &wabsync.MessageError{Code: "REVOKED_BEFORE_SENDING", Message: "Revoked before it was sent; nothing went out."}
			m.StatusHistory = append(m.StatusHistory, wabsync.StatusChange{Status: wabsync.MsgFailed, At: time.Now().UTC()})
			return nil
		})
		return err
	})
	if errors.Is(err, errSentMeanwhile) {
		return nil, nil
	}
	return out, err
}

func (s *Server) handleMarkRead(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sessionMessage(r)
	if err != nil {
		return err
	}
	if _, err := s.readBody(w, r, s.cfg.MaxJSON); err != nil {
		return err
	}
	if m.Direction != wabsync.DirectionIn {
		return wabsync.Errorf(wabsync.EConflict, "Only inbound messages can be marked read.")
	}
	eng, err := s.connectedEngine(m.SessionID)
	if err != nil {
		return err
	}
	changed, err := s.db.MarkInboundRead(r.Context(), m.SessionID, m.Chat, m.ID, nil)
	if err != nil {
		return err
	}
	bySender := map[string][]string{}
	for _, c := range changed {
		bySender[c.FromJID] = append(bySender[c.FromJID], c.WAID)
	}
	for sender, ids := range bySender {
		if err := eng.MarkRead(r.Context(), m.Chat, sender, ids, time.Now().UTC()); err != nil {
			s.logger.WarnContext(r.Context(), "read receipt not sent", "session_id", m.SessionID, "err", err)
		}
	}
	m, err = s.db.GetMessage(r.Context(), m.SessionID, m.ID)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Marked read", s.shown(m))
	return nil
}

func (s *Server) handleMessageMedia(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sessionMessage(r)
	if err != nil {
		return err
	}
	return s.serveMedia(w, r, m)
}

func (s *Server) handleSignedMedia(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	q := r.URL.Query()
	if s.media.Signer == nil || s.media.Signer.Verify(id, q.Get("expires"), q.Get("sig"), time.Now()) != nil {
		return wabsync.Errorf(wabsync.EForbidden, "The link is invalid or expired.")
	}
	m, err := s.db.GetMessageAny(r.Context(), id)
	if err != nil {
		return err
	}
	return s.serveMedia(w, r, m)
}

// serveMedia streams a message's media, downloading it through the engine
// the first time when only a reference is stored.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request, m *wabsync.Message) error {
	if m.Media == nil || s.media.Blobs == nil {
		return wabsync.NotFound("Media of this message")
	}
	key := m.Media.BlobKey
	if key == "" {
		if m.Media.Ref == "" {
			return wabsync.NotFound("Media of this message")
		}
		eng, err := s.connectedEngine(m.SessionID)
		if err != nil {
			return err
		}
		rc, err := eng.DownloadMedia(r.Context(), m.Media.Ref)
		if err != nil {
			return engineErr(err)
		}
		blob, err := s.media.Blobs.Put(r.Context(), rc, s.cfg.MaxUpload)
		rc.Close()
		if err != nil {
			return err
		}
		if err := s.db.SetMediaBlob(r.Context(), m.ID, blob.Key); err != nil {
			return err
		}
		key = blob.Key
	}
	f, err := s.media.Blobs.Open(key)
	if errors.Is(err, os.ErrNotExist) {
		return wabsync.NotFound("Media of this message")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", m.Media.MimeType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	name := m.Media.Filename
	if name == "" {
		name = m.ID
	}
	h.Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(media.SanitizeFilename(name), `"`, "")+`"`)
	h.Set("Content-Length", strconv.FormatInt(st.Size(), 10))
	h.Set("Cache-Control", "private, max-age=3600")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, f)
	}
	return nil
}
