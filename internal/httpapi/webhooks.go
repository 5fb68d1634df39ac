package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/safehttp"
	"github.com/wabsync/wabsync/internal/store"
	"github.com/wabsync/wabsync/internal/webhook"
)

// SecretGrace is how long a rotated-out webhook secret keeps signing
// deliveries alongside the new one, so that receivers can roll over.
const SecretGrace = webhook.DefaultSecretGrace

// maxWebhookDescription is the longest description, in characters.
const maxWebhookDescription = 500

// webhookRoutes returns the webhook routes (API.md, "Webhooks"): a session's
// endpoints, and the global ones (events of every session, admin only).
// The same handlers serve both; webhookScope tells them apart.
func (s *Server) webhookRoutes() []route {
	var rs []route
	for _, base := range []struct {
		prefix string
		access access
	}{
		{"/api/v1/sessions/{session}/webhooks", sessionAuth},
		{"/api/v1/webhooks", adminOnly},
	} {
		p, a := base.prefix, base.access
		rs = append(rs,
			route{"POST " + p, a, s.handleCreateWebhook},
			route{"GET " + p, a, s.handleListWebhooks},
			route{"GET " + p + "/{id}", a, s.handleGetWebhook},
			route{"PATCH " + p + "/{id}", a, s.handleUpdateWebhook},
			route{"DELETE " + p + "/{id}", a, s.handleDeleteWebhook},
			route{"POST " + p + "/{id}/test", a, s.handleTestWebhook},
			route{"POST " + p + "/{id}/secret", a, s.handleRotateWebhookSecret},
			route{"GET " + p + "/{id}/deliveries", a, s.handleListDeliveries},
			route{"POST " + p + "/{id}/deliveries/{delivery}/retry", a, s.handleRetryDelivery},
		)
	}
	return rs
}

// webhookScope resolves whose webhooks a request addresses: the session in
// {session} (which must exist and be the caller's), or nil for the global
// routes.
func (s *Server) webhookScope(r *http.Request) (*string, error) {
	if r.PathValue("session") == "" {
		return nil, nil
	}
	id, err := sessionParam(r)
	if err != nil {
		return nil, err
	}
	if _, err := s.db.CachedSession(r.Context(), id); err != nil {
		return nil, err
	}
	return &id, nil
}

// scopedWebhook returns the webhook {id} in the request's scope; a webhook
// of another scope is NOT_FOUND.
func (s *Server) scopedWebhook(r *http.Request) (*string, *wabsync.Webhook, error) {
	scope, err := s.webhookScope(r)
	if err != nil {
		return nil, nil, err
	}
	wh, err := s.db.GetWebhook(r.Context(), scope, r.PathValue("id"))
	return scope, wh, err
}

type createWebhookRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
	Secret      *string   `json:"secret"`
}

type updateWebhookRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Enabled     *bool     `json:"enabled"`
}

// validateWebhookURL checks url for the field, resolving it unless private
// targets are allowed.
func (s *Server) validateWebhookURL(r *http.Request, v wabsync.ValidationErrors, url string) error {
	err := safehttp.CheckURL(r.Context(), url, s.cfg.AllowPrivateURLs)
	if err == nil {
		return nil
	}
	if wabsync.ErrorCode(err) != wabsync.EValidation {
		return err
	}
	v.Add("url", wabsync.ErrorMessage(err))
	return nil
}

// validateEvents checks an event filter: a non-empty list of event types or
// "*", returned without duplicates.
func validateEvents(v wabsync.ValidationErrors, events []string) []string {
	if len(events) == 0 {
		v.Add("events", `must list at least one event type, or "*" for all`)
		return nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(events))
	for i, e := range events {
		if e != "*" && !wabsync.IsEventType(e) {
			v.Add("events["+strconv.Itoa(i)+"]", `must be an event type (`+strings.Join(wabsync.EventTypes, ", ")+`) or "*"`)
			continue
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

func validateDescription(v wabsync.ValidationErrors, d string) {
	if utf8.RuneCountInString(d) > maxWebhookDescription {
		v.Add("description", "must be at most "+strconv.Itoa(maxWebhookDescription)+" characters")
	}
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) error {
	scope, err := s.webhookScope(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	var req createWebhookRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	wh := &wabsync.Webhook{SessionID: scope, Events: []string{"*"}, Enabled: true}
	if req.URL == nil {
		v.Add("url", "is required")
	} else {
		wh.URL = *req.URL
		if err := s.validateWebhookURL(r, v, wh.URL); err != nil {
			return err
		}
	}
	if req.Events != nil {
		wh.Events = validateEvents(v, *req.Events)
	}
	if req.Description != nil {
		wh.Description = *req.Description
		validateDescription(v, wh.Description)
	}
	if req.Enabled != nil {
		wh.Enabled = *req.Enabled
	}
	if req.Secret != nil {
		if err := webhook.ValidateSecret(*req.Secret); err != nil {
			v.Add("secret", err.Error())
		}
		wh.Secret = *req.Secret
	} else {
		wh.Secret = webhook.NewSecret()
	}
	if err := v.Err(); err != nil {
		return err
	}
	rem, done, err := s.idempotency(w, r, scope, body, http.StatusCreated, "Webhook created")
	if done || err != nil {
		return err
	}
	err = s.db.CreateWebhook(r.Context(), wh, rem)
	if done, err := s.afterIdempotent(w, r, rem, err); done || err != nil {
		return err
	}
	respond(w, http.StatusCreated, "Webhook created", wh)
	return nil
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) error {
	scope, err := s.webhookScope(r)
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	l, err := s.db.ListWebhooks(r.Context(), scope, p)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Webhooks", listData(l))
	return nil
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) error {
	_, wh, err := s.scopedWebhook(r)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Webhook", wh)
	return nil
}

func (s *Server) handleUpdateWebhook(w http.ResponseWriter, r *http.Request) error {
	scope, err := s.webhookScope(r)
	if err != nil {
		return err
	}
	var req updateWebhookRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	patch := store.WebhookPatch{URL: req.URL, Description: req.Description, Enabled: req.Enabled}
	if req.URL != nil {
		if err := s.validateWebhookURL(r, v, *req.URL); err != nil {
			return err
		}
	}
	if req.Events != nil {
		patch.Events = validateEvents(v, *req.Events)
	}
	if req.Description != nil {
		validateDescription(v, *req.Description)
	}
	if err := v.Err(); err != nil {
		return err
	}
	wh, err := s.db.UpdateWebhook(r.Context(), scope, r.PathValue("id"), patch)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Webhook updated", wh)
	return nil
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) error {
	scope, err := s.webhookScope(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.db.DeleteWebhook(r.Context(), scope, id); err != nil {
		return err
	}
	respond(w, http.StatusOK, "Webhook deleted", map[string]any{"id": id, "deleted": true})
	return nil
}

func (s *Server) handleTestWebhook(w http.ResponseWriter, r *http.Request) error {
	scope, err := s.webhookScope(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	rem, done, err := s.idempotency(w, r, scope, body, http.StatusOK, "Test event queued")
	if done || err != nil {
		return err
	}
	_, d, err := s.db.AddTestEvent(r.Context(), scope, r.PathValue("id"), rem)
	if done, err := s.afterIdempotent(w, r, rem, err); done || err != nil {
		return err
	}
	respond(w, http.StatusOK, "Test event queued", d)
	return nil
}

func (s *Server) handleRotateWebhookSecret(w http.ResponseWriter, r *http.Request) error {
	scope, err := s.webhookScope(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	rem, done, err := s.idempotency(w, r, scope, body, http.StatusOK, "Secret rotated")
	if done || err != nil {
		return err
	}
	wh, err := s.db.RotateWebhookSecret(r.Context(), scope, r.PathValue("id"), webhook.NewSecret(), SecretGrace, rem)
	if done, err := s.afterIdempotent(w, r, rem, err); done || err != nil {
		return err
	}
	respond(w, http.StatusOK, "Secret rotated", wh)
	return nil
}

func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) error {
	_, wh, err := s.scopedWebhook(r)
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", wabsync.DeliveryPending, wabsync.DeliverySucceeded, wabsync.DeliveryFailed:
	default:
		return fieldError(wabsync.EBadRequest, "status", "must be pending, succeeded or failed")
	}
	l, err := s.db.ListDeliveries(r.Context(), wh.ID, status, p)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Deliveries", listData(l))
	return nil
}

func (s *Server) handleRetryDelivery(w http.ResponseWriter, r *http.Request) error {
	scope, wh, err := s.scopedWebhook(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r, s.cfg.MaxJSON)
	if err != nil {
		return err
	}
	rem, done, err := s.idempotency(w, r, scope, body, http.StatusOK, "Delivery queued for retry")
	if done || err != nil {
		return err
	}
	d, err := s.db.RetryDelivery(r.Context(), wh.ID, r.PathValue("delivery"), rem)
	if done, err := s.afterIdempotent(w, r, rem, err); done || err != nil {
		return err
	}
	respond(w, http.StatusOK, "Delivery queued for retry", d)
	return nil
}

// idempotency handles the Idempotency-Key of a webhook action: without one
// it returns nil; with one it answers a repeat of an earlier request with
// the first response (done) or a conflict, and otherwise returns the record
// for the store to keep with the change.
func (s *Server) idempotency(w http.ResponseWriter, r *http.Request, scope *string, body []byte, status int, message string) (*store.Remember, bool, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return nil, false, nil
	}
	if len(key) > 255 {
		return nil, false, fieldError(wabsync.EBadRequest, "Idempotency-Key", "must be at most 255 characters")
	}
	owner := "global"
	if scope != nil {
		owner = *scope
	}
	rem := &store.Remember{Scope: store.WebhooksScope(owner), Key: key, RequestHash: requestHash(r, bytes.TrimSpace(body)),
		Render: func(result any) (int, []byte, error) {
			b, err := envelopeJSON(message, result)
			return status, b, err
		}}
	done, err := s.replayIdempotent(w, r, rem.Scope, rem.Key, rem.RequestHash)
	return rem, done, err
}

// afterIdempotent handles the outcome of a change made with rem: when a
// concurrent request with the same key won the race, it answers with that
// one's response (done).
func (s *Server) afterIdempotent(w http.ResponseWriter, r *http.Request, rem *store.Remember, err error) (bool, error) {
	if rem != nil && errors.Is(err, store.ErrIdempotencyRace) {
		return s.replayIdempotent(w, r, rem.Scope, rem.Key, rem.RequestHash)
	}
	return false, err
}

// envelopeJSON renders the success envelope as respond writes it.
func envelopeJSON(message string, data any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(successEnvelope{Success: true, Message: message, Data: data})
	return buf.Bytes(), err
}
