package httpapi

import (
	"fmt"
	"net/http"

	"github.com/wabsync/wabsync"
)

func (s *Server) handleListChats(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingSession(r)
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	l, err := s.db.ListChats(r.Context(), id, p)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Chats", listData(l))
	return nil
}

func (s *Server) handleListContacts(w http.ResponseWriter, r *http.Request) error {
	id, err := s.existingSession(r)
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	l, err := s.db.ListContacts(r.Context(), id, p)
	if err != nil {
		return err
	}
	respond(w, http.StatusOK, "Contacts", listData(l))
	return nil
}

type checkContactsRequest struct {
	Phones []string `json:"phones"`
}

func (s *Server) handleCheckContacts(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	var req checkContactsRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	if len(req.Phones) == 0 || len(req.Phones) > 50 {
		v.Add("phones", "needs 1 to 50 phone numbers")
	}
	phones := make([]string, 0, len(req.Phones))
	for i, p := range req.Phones {
		n, ok := normalizePhone(p)
		if !ok {
			v.Add(fmt.Sprintf("phones[%d]", i), "must be a phone number in E.164 form")
			continue
		}
		phones = append(phones, n)
	}
	if err := v.Err(); err != nil {
		return err
	}
	if _, err := s.db.CachedSession(r.Context(), id); err != nil {
		return err
	}
	eng, err := s.connectedEngine(id)
	if err != nil {
		return err
	}
	res, err := eng.CheckPhones(r.Context(), phones)
	if err != nil {
		return engineErr(err)
	}
	respond(w, http.StatusOK, "Checked", wabsync.List[wabsync.PhoneCheck]{Items: res})
	return nil
}

type presenceRequest struct {
	To    string `json:"to"`
	State string `json:"state"`
}

func (s *Server) handlePresence(w http.ResponseWriter, r *http.Request) error {
	id, err := sessionParam(r)
	if err != nil {
		return err
	}
	var req presenceRequest
	if err := s.readJSON(w, r, &req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	_, jid, ok := parseRecipient(req.To)
	if !ok {
		v.Add("to", recipientHelp)
	}
	if req.State != "typing" && req.State != "recording" && req.State != "paused" {
		v.Add("state", `must be "typing", "recording" or "paused"`)
	}
	if err := v.Err(); err != nil {
		return err
	}
	if _, err := s.db.CachedSession(r.Context(), id); err != nil {
		return err
	}
	eng, err := s.connectedEngine(id)
	if err != nil {
		return err
	}
	if err := eng.SendPresence(r.Context(), jid, req.State); err != nil {
		return engineErr(err)
	}
	respond(w, http.StatusOK, "Presence sent", map[string]string{"to": req.To, "state": req.State})
	return nil
}
