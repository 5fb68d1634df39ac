package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

func (s *Server) messageRoutes() []route {
	return []route{
		{"POST /api/v1/sessions/{session}/messages/text", sessionAuth, s.handleSendText},
		{"POST /api/v1/sessions/{session}/messages/file", sessionAuth, s.handleSendFile},
		{"POST /api/v1/sessions/{session}/messages/location", sessionAuth, s.handleSendLocation},
		{"POST /api/v1/sessions/{session}/messages/contact", sessionAuth, s.handleSendContact},
		{"POST /api/v1/sessions/{session}/messages/reaction", sessionAuth, s.handleSendReaction},
		{"GET /api/v1/sessions/{session}/messages", sessionAuth, s.handleListMessages},
		{"GET /api/v1/sessions/{session}/messages/{id}", sessionAuth, s.handleGetMessage},
		{"PATCH /api/v1/sessions/{session}/messages/{id}", sessionAuth, s.handleEditMessage},
		{"DELETE /api/v1/sessions/{session}/messages/{id}", sessionAuth, s.handleRevokeMessage},
		{"POST /api/v1/sessions/{session}/messages/{id}/read", sessionAuth, s.handleMarkRead},
		{"GET /api/v1/sessions/{session}/messages/{id}/media", sessionAuth, s.handleMessageMedia},
		{"GET /api/v1/media/{id}", public, s.handleSignedMedia},
		{"GET /api/v1/sessions/{session}/chats", sessionAuth, s.handleListChats},
		{"GET /api/v1/sessions/{session}/contacts", sessionAuth, s.handleListContacts},
		{"POST /api/v1/sessions/{session}/contacts/check", sessionAuth, s.handleCheckContacts},
		{"POST /api/v1/sessions/{session}/presence", sessionAuth, s.handlePresence},
	}
}

func jidOfPhone(phone string) string {
	if phone == "" {
		return ""
	}
	return strings.TrimPrefix(phone, "+") + "@s.whatsapp.net"
}

// outbound starts an outbound message of the session to `to`.
func outbound(sess *wabsync.Session, kind, to string, v wabsync.ValidationErrors) *wabsync.Message {
	m := &wabsync.Message{ID: wabsync.NewID("msg"), SessionID: sess.ID, Direction: wabsync.DirectionOut, Kind: kind,
		From: sess.Phone, FromJID: jidOfPhone(sess.Phone), WAID: wabsync.NewWAID()}
	if to == "" {
		v.Add("to", "is required")
		return m
	}
	phone, jid, ok := parseRecipient(to)
	if !ok {
		v.Add("to", recipientHelp)
		return m
	}
	m.To, m.ToJID, m.Chat = phone, jid, jid
	return m
}

// resolveMessage finds a message of the session by id or WhatsApp id.
func (s *Server) resolveMessage(r *http.Request, sessionID, ref string) (*wabsync.Message, error) {
	if m, err := s.db.GetMessage(r.Context(), sessionID, ref); err == nil {
		return m, nil
	} else if wabsync.ErrorCode(err) != wabsync.ENotFound {
		return nil, err
	}
	m, err := s.db.FindByWAID(r.Context(), sessionID, ref)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, wabsync.NotFound("Message")
	}
	return m, nil
}

// sendContext is what every send handler shares: the session, the raw
// request for the idempotency hash, and the idempotency key.
type sendContext struct {
	sess   *wabsync.Session
	key    string
	scope  string
	replay bool
}

// beginSend resolves the session and replays a stored response for a
// repeated Idempotency-Key. When it returns replay=true the response is written.
func (s *Server) beginSend(w http.ResponseWriter, r *http.Request, hash string) (*sendContext, error) {
	id, err := sessionParam(r)
	if err != nil {
		return nil, err
	}
	sess, err := s.db.CachedSession(r.Context(), id)
	if err != nil {
		return nil, err
	}
	sc := &sendContext{sess: sess, key: r.Header.Get("Idempotency-Key"), scope: store.SendScope(sess.ID)}
	if sc.key == "" {
		return sc, nil
	}
	if len(sc.key) > 255 {
		return nil, fieldError(wabsync.EBadRequest, "Idempotency-Key", "must be at most 255 characters")
	}
	done, err := s.replayIdempotent(w, r, sc.scope, sc.key, hash)
	if err != nil {
		return nil, err
	}
	sc.replay = done
	return sc, nil
}

// replayIdempotent writes the stored response of an earlier request with the
// same key and reports true; a different request with the key is a conflict.
func (s *Server) replayIdempotent(w http.ResponseWriter, r *http.Request, scope, key, hash string) (bool, error) {
	prev, err := s.db.GetIdempotent(r.Context(), scope, key)
	if err != nil || prev == nil {
		return false, err
	}
	if prev.RequestHash != hash {
		return false, &wabsync.Error{Code: wabsync.EIdempotencyConflict,
			Message: "This Idempotency-Key was used with a different request in the last 24 hours.", Details: map[string]string{"Idempotency-Key": "reused with a different body"}}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(prev.Status)
	_, _ = w.Write(prev.Body)
	return true, nil
}

// readSend reads a JSON send request into req, then resolves the session
// and replays the stored response of a repeated Idempotency-Key (sc.replay).
func (s *Server) readSend(w http.ResponseWriter, r *http.Request, req any) (sc *sendContext, hash string, err error) {
	raw, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return nil, "", err
	}
	if err := decodeStrict(raw, req); err != nil {
		return nil, "", err
	}
	hash = requestHash(r, raw)
	sc, err = s.beginSend(w, r, hash)
	return sc, hash, err
}

// requestHash identifies a request for Idempotency-Key: its method, path and
// body. A JSON body is hashed in canonical form (keys sorted, no spacing), so
// a retry that encodes the same JSON differently is the same request. Without
// an Idempotency-Key there is nothing to compare, and it returns "".
func requestHash(r *http.Request, parts ...[]byte) string {
	if r.Header.Get("Idempotency-Key") == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	for _, p := range parts {
		var v any
		if t := bytes.TrimSpace(p); len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Unmarshal(t, &v) == nil {
			if c, err := json.Marshal(v); err == nil {
				p = c
			}
		}
		h.Write(p)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// acceptedPrefix starts a 201 to a send, as successEnvelope encodes it.
const acceptedPrefix = `{"success":true,"message":"Message queued","data":`

// accept stores m as queued and answers 201, remembering the response under
// the idempotency key in the same transaction.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, sc *sendContext, m *wabsync.Message, hash string, queueIfOffline *bool) error {
	if queueIfOffline != nil && !*queueIfOffline && sc.sess.Status != wabsync.StatusConnected {
		return &wabsync.Error{Code: wabsync.ESessionNotConnected, Message: "The session is not connected (status " + string(sc.sess.Status) + ") and the request said queue_if_offline: false.",
			Details: map[string]string{"status": string(sc.sess.Status)}}
	}
	var body []byte
	var idem *store.Idempotency
	render := func() (int, []byte, error) {
		buf, err := jsonMarshal(successEnvelope{Success: true, Message: "Message queued", Data: s.shown(m)})
		body = append(buf, '\n')
		return http.StatusCreated, body, err
	}
	if sc.key != "" {
		idem = &store.Idempotency{Scope: sc.scope, Key: sc.key, RequestHash: hash, Response: render}
	}
	stored, err := s.db.AcceptMessageJSON(r.Context(), m, idem)
	if errors.Is(err, store.ErrIdempotencyRace) {
		if done, err := s.replayIdempotent(w, r, sc.scope, sc.key, hash); done || err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	switch {
	case body != nil: // rendered for the idempotency record
	case stored != nil:
		// The message as stored is the message as shown: not encoded again.
		body = make([]byte, 0, len(acceptedPrefix)+len(stored)+2)
		body = append(append(append(body, acceptedPrefix...), stored...), "}\n"...)
	default:
		if _, _, err := render(); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
	return nil
}

// shown returns the message as the API shows it (signed media link).
func (s *Server) shown(m *wabsync.Message) *wabsync.Message {
	c := *m
	if m.Media != nil {
		media := *m.Media
		c.Media = &media
	}
	if c.StatusHistory == nil {
		c.StatusHistory = []wabsync.StatusChange{}
	}
	if s.db.Decorate != nil {
		s.db.Decorate(&c)
	}
	return &c
}

type sendTextRequest struct {
	To             string   `json:"to"`
	Text           string   `json:"text"`
	ReplyTo        string   `json:"reply_to"`
	Mentions       []string `json:"mentions"`
	LinkPreview    bool     `json:"link_preview"`
	QueueIfOffline *bool    `json:"queue_if_offline"`
}

const maxText = 65536

func (s *Server) handleSendText(w http.ResponseWriter, r *http.Request) error {
	var req sendTextRequest
	sc, hash, err := s.readSend(w, r, &req)
	if err != nil || sc.replay {
		return err
	}
	v := wabsync.ValidationErrors{}
	m := outbound(sc.sess, wabsync.KindText, req.To, v)
	switch {
	case strings.TrimSpace(req.Text) == "":
		v.Add("text", "is required and must not be empty")
	case utf8.RuneCountInString(req.Text) > maxText:
		v.Add("text", fmt.Sprintf("must be at most %d characters", maxText))
	}
	m.Text, m.LinkPreview = req.Text, req.LinkPreview
	if len(req.Mentions) > 100 {
		v.Add("mentions", "must have at most 100 entries")
	}
	for i, mention := range req.Mentions {
		_, jid, ok := parseRecipient(mention)
		if !ok {
			v.Add(fmt.Sprintf("mentions[%d]", i), recipientHelp)
			continue
		}
		m.Mentions = append(m.Mentions, jid)
	}
	if err := s.setReplyTo(r, sc.sess.ID, m, req.ReplyTo, v); err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	return s.accept(w, r, sc, m, hash, req.QueueIfOffline)
}

func (s *Server) setReplyTo(r *http.Request, sessionID string, m *wabsync.Message, ref string, v wabsync.ValidationErrors) error {
	if ref == "" {
		return nil
	}
	q, err := s.resolveMessage(r, sessionID, ref)
	if wabsync.ErrorCode(err) == wabsync.ENotFound {
		v.Add("reply_to", "no message with this id or wa_id in this session")
		return nil
	}
	if err != nil {
		return err
	}
	m.ReplyTo = q.ID
	return nil
}

type sendLocationRequest struct {
	To             string   `json:"to"`
	Latitude       *float64 `json:"latitude"`
	Longitude      *float64 `json:"longitude"`
	Name           string   `json:"name"`
	Address        string   `json:"address"`
	ReplyTo        string   `json:"reply_to"`
	QueueIfOffline *bool    `json:"queue_if_offline"`
}

func (s *Server) handleSendLocation(w http.ResponseWriter, r *http.Request) error {
	var req sendLocationRequest
	sc, hash, err := s.readSend(w, r, &req)
	if err != nil || sc.replay {
		return err
	}
	v := wabsync.ValidationErrors{}
	m := outbound(sc.sess, wabsync.KindLocation, req.To, v)
	switch {
	case req.Latitude == nil:
		v.Add("latitude", "is required")
	case *req.Latitude < -90 || *req.Latitude > 90:
		v.Add("latitude", "must be from -90 to 90")
	}
	switch {
	case req.Longitude == nil:
		v.Add("longitude", "is required")
	case *req.Longitude < -180 || *req.Longitude > 180:
		v.Add("longitude", "must be from -180 to 180")
	}
	if len(req.Name) > 1000 {
		v.Add("name", "must be at most 1000 bytes")
	}
	if len(req.Address) > 1000 {
		v.Add("address", "must be at most 1000 bytes")
	}
	if err := s.setReplyTo(r, sc.sess.ID, m, req.ReplyTo, v); err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	m.Location = &wabsync.Location{Latitude: *req.Latitude, Longitude: *req.Longitude, Name: req.Name, Address: req.Address}
	return s.accept(w, r, sc, m, hash, req.QueueIfOffline)
}

type contactInput struct {
	Name   string   `json:"name"`
	Phones []string `json:"phones"`
	VCard  string   `json:"vcard"`
}

type sendContactRequest struct {
	To             string         `json:"to"`
	Contacts       []contactInput `json:"contacts"`
	ReplyTo        string         `json:"reply_to"`
	QueueIfOffline *bool          `json:"queue_if_offline"`
}

func (s *Server) handleSendContact(w http.ResponseWriter, r *http.Request) error {
	var req sendContactRequest
	sc, hash, err := s.readSend(w, r, &req)
	if err != nil || sc.replay {
		return err
	}
	v := wabsync.ValidationErrors{}
	m := outbound(sc.sess, wabsync.KindContact, req.To, v)
	if len(req.Contacts) == 0 {
		v.Add("contacts", "needs at least one contact")
	} else if len(req.Contacts) > 10 {
		v.Add("contacts", "must have at most 10 contacts")
	}
	for i, c := range req.Contacts {
		f := fmt.Sprintf("contacts[%d]", i)
		if strings.TrimSpace(c.Name) == "" || len(c.Name) > 256 {
			v.Add(f+".name", "is required, at most 256 bytes")
		}
		if len(c.Phones) == 0 || len(c.Phones) > 10 {
			v.Add(f+".phones", "needs 1 to 10 phone numbers")
		}
		out := wabsync.Contact{Name: c.Name}
		for j, p := range c.Phones {
			n, ok := normalizePhone(p)
			if !ok {
				v.Add(fmt.Sprintf("%s.phones[%d]", f, j), "must be a phone number in E.164 form")
				continue
			}
			out.Phones = append(out.Phones, n)
		}
		if c.VCard != "" {
			v.Add(f+".vcard", "is made by the server from name and phones; leave it out")
		}
		out.VCard = buildVCard(out)
		m.Contacts = append(m.Contacts, out)
	}
	if err := s.setReplyTo(r, sc.sess.ID, m, req.ReplyTo, v); err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	return s.accept(w, r, sc, m, hash, req.QueueIfOffline)
}

// buildVCard writes a vCard 3.0 with WhatsApp's waid parameter.
func buildVCard(c wabsync.Contact) string {
	esc := strings.NewReplacer("\\", "\\\\", ",", "\\,", ";", "\\;", "\n", "\\n", "\r", "")
	var b strings.Builder
	b.WriteString("BEGIN:VCARD\nVERSION:3.0\n")
	b.WriteString("FN:" + esc.Replace(c.Name) + "\n")
	for _, p := range c.Phones {
		b.WriteString("TEL;type=CELL;type=VOICE;waid=" + strings.TrimPrefix(p, "+") + ":" + p + "\n")
	}
	b.WriteString("END:VCARD")
	return b.String()
}

type sendReactionRequest struct {
	To             string  `json:"to"`
	MessageID      string  `json:"message_id"`
	Emoji          *string `json:"emoji"`
	QueueIfOffline *bool   `json:"queue_if_offline"`
}

func (s *Server) handleSendReaction(w http.ResponseWriter, r *http.Request) error {
	var req sendReactionRequest
	sc, hash, err := s.readSend(w, r, &req)
	if err != nil || sc.replay {
		return err
	}
	v := wabsync.ValidationErrors{}
	m := outbound(sc.sess, wabsync.KindReaction, req.To, v)
	if req.Emoji == nil {
		v.Add("emoji", `is required ("" removes the reaction)`)
	} else if len(*req.Emoji) > 64 || utf8.RuneCountInString(*req.Emoji) > 10 {
		v.Add("emoji", "must be one emoji")
	}
	if req.MessageID == "" {
		v.Add("message_id", "is required")
	} else {
		t, err := s.resolveMessage(r, sc.sess.ID, req.MessageID)
		if wabsync.ErrorCode(err) == wabsync.ENotFound {
			v.Add("message_id", "no message with this id or wa_id in this session")
		} else if err != nil {
			return err
		} else if t.Revoked {
			return errRevoked()
		} else {
			emoji := ""
			if req.Emoji != nil {
				emoji = *req.Emoji
			}
			m.Reaction = &wabsync.Reaction{MessageID: t.ID, Emoji: emoji}
			if m.Chat != "" && m.Chat != t.Chat {
				v.Add("to", "must be the chat of the message reacted to ("+t.Chat+")")
			}
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	return s.accept(w, r, sc, m, hash, req.QueueIfOffline)
}

func (s *Server) handleListMessages(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingSession(r)
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := wabsync.MessageFilter{Page: p, Chat: q.Get("chat"), Direction: q.Get("direction"), Status: wabsync.MessageStatus(q.Get("status"))}
	if f.Chat != "" {
		if _, jid, ok := parseRecipient(f.Chat); ok {
			f.Chat = jid
		} else {
			return fieldError(wabsync.EBadRequest, "chat", recipientHelp)
		}
	}
	if f.Direction != "" && f.Direction != wabsync.DirectionIn && f.Direction != wabsync.DirectionOut {
		return fieldError(wabsync.EBadRequest, "direction", `must be "in" or "out"`)
	}
	if f.Status != "" && f.Status.Rank() < 0 {
		return fieldError(wabsync.EBadRequest, "status", "must be a message status")
	}
	for _, name := range []string{"since", "until"} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return fieldError(wabsync.EBadRequest, name, "must be an RFC 3339 time")
			}
			if name == "since" {
				f.Since = &t
			} else {
				f.Until = &t
			}
		}
	}
	l, err := s.db.ListMessages(r.Context(), id, f)
	if err != nil {
		return err
	}
	for i, m := range l.Items {
		l.Items[i] = s.shown(m)
	}
	respond(w, http.StatusOK, "Messages", listData(l))
	return nil
}

func (s *Server) sessionMessage(r *http.Request) (*wabsync.Message, error) {
	id, err := sessionParam(r)
	if err != nil {
		return nil, err
	}
	return s.db.GetMessage(r.Context(), id, r.PathValue("id"))
}

func (s *Server) handleGetMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sessionMessage(r)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Message", s.shown(m))
	return nil
}
