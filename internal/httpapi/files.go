package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/media"
)

type sendFileRequest struct {
	To  string `json:"to"`
	URL string `json:"url"`
	// The base64 field is not here: readJSONFile streams it to the store.
	Filename       string `json:"filename"`
	MimeType       string `json:"mime_type"`
	Kind           string `json:"kind"`
	Caption        string `json:"caption"`
	ReplyTo        string `json:"reply_to"`
	QueueIfOffline *bool  `json:"queue_if_offline"`
}

const maxCaption = 4096

// handleSendFile sends a file given as JSON (url or base64) or as
// multipart/form-data with a "file" part, streamed to the blob store.
//
// A file costs disk, so everything that can be checked without it is checked
// before it is stored: the session and the token's access to it, the
// Idempotency-Key's form, and the fields that arrive before the file. A file
// stored for a request that fails after all is removed again (Discard); one
// that another message shares is left to the collector.
func (s *Server) handleSendFile(w http.ResponseWriter, r *http.Request) error {
	if s.media.Blobs == nil {
		return wabsync.Errorf(wabsync.EUnavailable, "Media storage is not configured.")
	}
	sessionID, err := s.existingSession(r)
	if err == nil && len(r.Header.Get("Idempotency-Key")) > 255 {
		err = fieldError(wabsync.EBadRequest, "Idempotency-Key", "must be at most 255 characters")
	}
	if err != nil {
		w.Header().Set("Connection", "close")
		return err
	}
	up := &upload{sessionID: sessionID}
	accepting, err := s.sendFile(w, r, up)
	if err != nil {
		// The rest of a refused body is not worth reading (net/http would
		// wait for up to 256 KiB of it before answering).
		w.Header().Set("Connection", "close")
	}
	// Once the message was handed to the store, a fault may still have
	// stored it: its file is then left to the collector, which asks.
	if up.blob != nil && (!accepting || (err != nil && !mayBeStored(err))) {
		if derr := s.media.Blobs.Discard(*up.blob); derr != nil {
			s.logger.WarnContext(r.Context(), "removing the file of a failed upload", "request_id", requestIDFrom(r.Context()), "err", derr)
		}
	}
	return err
}

// mayBeStored reports whether a failed accept may have stored the message
// all the same: an internal or storage fault, not a refusal.
func mayBeStored(err error) bool {
	code := wabsync.ErrorCode(err)
	return code == wabsync.EInternal || code == wabsync.EUnavailable
}

// upload is a file send request as it is read.
type upload struct {
	sessionID string
	req       sendFileRequest
	blob      *media.Blob // once stored
	partType  string      // the multipart file part's Content-Type
	hash      string      // for Idempotency-Key
}

// sendFile reads and checks the request, stores its file and accepts the
// message; accepting says that it got as far as storing the message (not
// so for an error before, or an idempotent replay).
func (s *Server) sendFile(w http.ResponseWriter, r *http.Request, up *upload) (accepting bool, err error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		err = s.readJSONFile(w, r, up)
	case "multipart/form-data":
		err = s.readMultipartFile(w, r, up)
	default:
		err = errorf(wabsync.EUnsupportedMedia, "Content-Type must be application/json or multipart/form-data.")
	}
	if err != nil {
		return false, err
	}
	sc, err := s.beginSend(w, r, up.hash)
	if err != nil || sc.replay {
		return false, err
	}
	req := &up.req
	v := wabsync.ValidationErrors{}
	m := outbound(sc.sess, "", req.To, v)
	checkFileFields(req, v)
	switch {
	case up.blob != nil && req.URL != "":
		v.Add("url", "give either url or base64, not both")
	case up.blob == nil && req.URL == "":
		v.Add("url", "give the file as url or base64 (or send multipart/form-data with a file part)")
	}
	if err := s.setReplyTo(r, sc.sess.ID, m, req.ReplyTo, v); err != nil {
		return false, err
	}
	if err := v.Err(); err != nil {
		return false, err
	}
	if up.blob == nil {
		if err := s.storeJSONFile(r, up); err != nil {
			return false, err
		}
	}
	if err := fileMessage(m, up); err != nil {
		return false, err
	}
	return true, s.accept(w, r, sc, m, up.hash, req.QueueIfOffline)
}

// maxJSONUploads is how many JSON requests larger than the JSON limit (a
// base64 file) are read at once; past it the server answers 503 with
// Retry-After. Each holds a few buffers, never the file (see readJSONFile).
const maxJSONUploads = 16

// maxJSONUploadsPerToken is how many of those one token may have at once
// (429 past it), so that one caller's slow uploads cannot hold them all.
const maxJSONUploadsPerToken = 4

// readJSONFile reads a JSON request: its fields, and its file, as a URL
// (fetched later, by storeJSONFile) or as base64, decoded as it streams in
// and stored once the fields before it have passed checkBeforeFile (fields
// after it are checked with the whole request). Only the other fields are
// held, bounded by the JSON limit. The hash for Idempotency-Key covers the
// fields and the file's SHA-256.
func (s *Server) readJSONFile(w http.ResponseWriter, r *http.Request, up *upload) error {
	// base64 inflates by 4/3; the body's limit grows to fit the largest file.
	limit := s.cfg.MaxUpload/3*4 + s.cfg.MaxJSON
	if r.ContentLength > limit {
		return errorf(wabsync.EPayloadTooLarge, "The request body is larger than %d bytes.", limit)
	}
	release, err := s.jsonUploadSlot(w, r)
	if err != nil {
		return err
	}
	defer release()
	fields := map[string]json.RawMessage{}
	walker := &fileJSON{file: "base64", maxFields: s.cfg.MaxJSON,
		field:  func(key string, raw json.RawMessage) error { fields[key] = raw; return nil },
		onFile: func(b64 io.Reader) error { return s.storeBase64(r, up, fields, b64) }}
	switch err := walker.walk(http.MaxBytesReader(w, r.Body, limit)); {
	case errors.Is(err, errBadJSON):
		return errorf(wabsync.EBadRequest, "The request body is not valid JSON.")
	case errors.Is(err, errFieldsTooLarge):
		return errorf(wabsync.EPayloadTooLarge, "The fields other than base64 are larger than %d bytes.", s.cfg.MaxJSON)
	case err != nil:
		return uploadError(err)
	}
	if err := decodeFields(fields, &up.req); err != nil {
		return err
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	parts := [][]byte{raw}
	if up.blob != nil {
		parts = append(parts, []byte("base64="+up.blob.SHA256))
	}
	up.hash = requestHash(r, parts...)
	return nil
}

// jsonUploadSlot takes one of the maxJSONUploads slots for a JSON body
// larger than the JSON limit (or of no stated length), or answers 503.
func (s *Server) jsonUploadSlot(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	if r.ContentLength >= 0 && r.ContentLength <= s.cfg.MaxJSON {
		return func() {}, nil
	}
	var tokenID string
	if p := wabsync.PrincipalFromContext(r.Context()); p != nil {
		tokenID = p.TokenID
	}
	s.jsonUploadsMu.Lock()
	mine := s.jsonUploadsBy[tokenID]
	if mine < maxJSONUploadsPerToken {
		s.jsonUploadsBy[tokenID] = mine + 1
	}
	s.jsonUploadsMu.Unlock()
	if mine >= maxJSONUploadsPerToken {
		w.Header().Set("Retry-After", "1")
		return nil, errorf(wabsync.ERateLimited, "This token has %d large JSON uploads running; retry after the time in Retry-After, or send the file as multipart/form-data.", mine)
	}
	unmine := func() {
		s.jsonUploadsMu.Lock()
		if s.jsonUploadsBy[tokenID]--; s.jsonUploadsBy[tokenID] == 0 {
			delete(s.jsonUploadsBy, tokenID)
		}
		s.jsonUploadsMu.Unlock()
	}
	select {
	case s.jsonUploads <- struct{}{}:
		return func() { <-s.jsonUploads; unmine() }, nil
	default:
		unmine()
		w.Header().Set("Retry-After", "1")
		return nil, errorf(wabsync.EUnavailable, "Too many large JSON uploads at once; retry after the time in Retry-After, or send the file as multipart/form-data.")
	}
}

// storeBase64 checks the fields that came before the base64 file, then
// decodes the file from b64 into the blob store as it arrives.
func (s *Server) storeBase64(r *http.Request, up *upload, fields map[string]json.RawMessage, b64 io.Reader) error {
	if up.blob != nil {
		return fieldError(wabsync.EValidation, "base64", "is given twice")
	}
	if err := decodeFields(fields, &up.req); err != nil {
		return err
	}
	v := wabsync.ValidationErrors{}
	if up.req.URL != "" {
		v.Add("url", "give either url or base64, not both")
	}
	if err := s.checkBeforeFile(r, up, v); err != nil {
		return err
	}
	b, err := s.media.Blobs.PutBase64Reader(r.Context(), b64, s.cfg.MaxUpload)
	if err != nil {
		return err
	}
	up.blob = &b
	return nil
}

// decodeFields decodes the fields read so far into req, strictly.
func decodeFields(fields map[string]json.RawMessage, req *sendFileRequest) error {
	raw, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return decodeStrict(raw, req)
}

// storeJSONFile fetches and stores the file of a JSON request's url.
func (s *Server) storeJSONFile(r *http.Request, up *upload) error {
	if s.media.Fetcher == nil {
		return wabsync.Errorf(wabsync.EUnavailable, "Fetching URLs is not configured.")
	}
	b, name, ctype, err := s.media.Fetcher.Fetch(r.Context(), up.req.URL)
	if err != nil {
		return err
	}
	if up.req.Filename == "" {
		up.req.Filename = name
	}
	up.partType = ctype
	up.blob = &b
	return nil
}

// checkFileFields checks the fields of a file request that need neither the
// file nor the database; it runs on what has arrived before the file, and
// again on the whole request.
func checkFileFields(req *sendFileRequest, v wabsync.ValidationErrors) {
	if req.Kind != "" && !wabsync.IsMediaKind(req.Kind) {
		v.Add("kind", "must be one of image, video, audio, voice, document, sticker")
	}
	if utf8.RuneCountInString(req.Caption) > maxCaption {
		v.Add("caption", "must be at most 4096 characters")
	}
	if req.MimeType != "" {
		pm, _, err := mime.ParseMediaType(req.MimeType)
		switch {
		case err != nil || !strings.Contains(pm, "/"):
			v.Add("mime_type", "must be a MIME type like image/png")
		case !media.AllowedMime(pm):
			v.Add("mime_type", "this type of file ("+pm+") cannot be sent")
		}
	}
}

// checkBeforeFile checks the fields that arrived before the file, so that
// a request bound to fail does not store it: those of checkFileFields, a
// recipient given, and a message replied to.
func (s *Server) checkBeforeFile(r *http.Request, up *upload, v wabsync.ValidationErrors) error {
	if up.req.To != "" {
		if _, _, ok := parseRecipient(up.req.To); !ok {
			v.Add("to", recipientHelp)
		}
	}
	checkFileFields(&up.req, v)
	if up.req.ReplyTo != "" {
		if _, err := s.resolveMessage(r, up.sessionID, up.req.ReplyTo); wabsync.ErrorCode(err) == wabsync.ENotFound {
			v.Add("reply_to", "no message with this id or wa_id in this session")
		} else if err != nil {
			return err
		}
	}
	return v.Err()
}

// fileMessage makes m a message of the stored file: its type (the one the
// request says, else the upload's or download's, else what the bytes look
// like; executables are refused whatever they claim to be), kind, caption
// and media.
func fileMessage(m *wabsync.Message, up *upload) error {
	blob, req := up.blob, &up.req
	if blob.Size == 0 {
		return fieldError(wabsync.EValidation, "file", "is empty")
	}
	mimeType := req.MimeType
	if mimeType == "" && up.partType != "" && up.partType != "application/octet-stream" {
		mimeType = up.partType
	}
	if mimeType == "" {
		mimeType = blob.MimeType
	}
	if !media.AllowedMime(blob.MimeType) || !media.AllowedMime(mimeType) {
		return fieldError(wabsync.EValidation, "mime_type", "this type of file ("+blob.MimeType+") cannot be sent")
	}
	kind := req.Kind
	if kind == "" {
		k, ok := media.KindForMime(mimeType)
		if !ok {
			return fieldError(wabsync.EValidation, "mime_type", "unsupported MIME type "+mimeType)
		}
		kind = k
	}
	m.Kind = kind
	m.Caption = req.Caption
	m.Media = &wabsync.Media{MimeType: mimeType, Size: blob.Size, SHA256: blob.SHA256, Filename: media.SanitizeFilename(req.Filename), BlobKey: blob.Key}
	if m.Media.Filename == "" || m.Media.Filename == "." {
		m.Media.Filename = ""
	}
	return nil
}

// readMultipartFile reads the form fields into up.req and streams the
// "file" part into the blob store, once the fields before it have passed
// checkBeforeFile (fields after it are checked with the whole request). The
// hash for Idempotency-Key covers the fields and the file's SHA-256.
func (s *Server) readMultipartFile(w http.ResponseWriter, r *http.Request, up *upload) error {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload+s.cfg.MaxJSON)
	mr, err := r.MultipartReader()
	if err != nil {
		return errorf(wabsync.EBadRequest, "The multipart body could not be read.")
	}
	req := &up.req
	var parts [][]byte
	fields := map[string]*string{"to": &req.To, "filename": &req.Filename, "mime_type": &req.MimeType, "kind": &req.Kind,
		"caption": &req.Caption, "reply_to": &req.ReplyTo}
	v := wabsync.ValidationErrors{}
	for i := 0; i < 20; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return tooLargeOr(err, errorf(wabsync.EBadRequest, "The multipart body could not be read."))
		}
		name := p.FormName()
		if name == "file" {
			if up.blob != nil {
				v.Add("file", "only one file per message")
				p.Close()
				continue
			}
			if err := s.checkBeforeFile(r, up, v); err != nil {
				return err
			}
			b, err := s.media.Blobs.Put(r.Context(), p, s.cfg.MaxUpload)
			if err != nil {
				return uploadError(err)
			}
			up.blob = &b
			up.partType, _, _ = mime.ParseMediaType(p.Header.Get("Content-Type"))
			if req.Filename == "" {
				req.Filename = p.FileName()
			}
			parts = append(parts, []byte("file="+b.SHA256))
			continue
		}
		val, err := io.ReadAll(io.LimitReader(p, 64<<10+1))
		if err != nil {
			return tooLargeOr(err, errorf(wabsync.EBadRequest, "The multipart body could not be read."))
		}
		if len(val) > 64<<10 {
			v.Add(name, "is too long")
			continue
		}
		if msg := textProblem(string(val)); msg != "" {
			v.Add(name, msg)
			continue
		}
		parts = append(parts, []byte(name+"="+string(val)))
		switch {
		case name == "queue_if_offline":
			b := string(val) == "true"
			if string(val) != "true" && string(val) != "false" {
				v.Add(name, "must be true or false")
			}
			req.QueueIfOffline = &b
		case fields[name] != nil:
			*fields[name] = string(val)
		default:
			v.Add(name, "unknown field")
		}
	}
	if up.blob == nil {
		v.Add("file", "is required: a part named file")
	}
	if err := v.Err(); err != nil {
		return err
	}
	up.hash = requestHash(r, parts...)
	return nil
}

func tooLargeOr(err, other error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, media.ErrTooLarge) {
		return errorf(wabsync.EPayloadTooLarge, "The file is larger than the limit (WABSYNC_MAX_UPLOAD).")
	}
	return other
}

// uploadError is the answer to an error of storing an upload: 413 past the
// limit, 400 for a body that could not be read (cut short), else err.
func uploadError(err error) error {
	var we *wabsync.Error
	if errors.As(err, &we) {
		return err
	}
	if media.IsReadError(err) {
		return tooLargeOr(err, errorf(wabsync.EBadRequest, "The request body could not be read."))
	}
	return tooLargeOr(err, err)
}
