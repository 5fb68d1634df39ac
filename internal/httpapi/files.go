package httpapi

import (
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
	To             string `json:"to"`
	URL            string `json:"url"`
	Base64         string `json:"base64"`
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
func (s *Server) handleSendFile(w http.ResponseWriter, r *http.Request) error {
	if s.media.Blobs == nil {
		return wabsync.Errorf(wabsync.EUnavailable, "Media storage is not configured.")
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req sendFileRequest
	var blob *media.Blob
	var hash, partType string
	switch mt {
	case "application/json":
		// base64 inflates by 4/3; the JSON limit grows to fit the largest file.
		raw, err := s.readBody(w, r, s.cfg.MaxUpload/3*4+s.cfg.MaxJSON)
		if err != nil {
			return err
		}
		if err := decodeStrict(raw, &req); err != nil {
			return err
		}
		hash = requestHash(r, raw)
	case "multipart/form-data":
		var err error
		blob, partType, hash, err = s.readMultipartFile(w, r, &req)
		if err != nil {
			return err
		}
	default:
		return errorf(wabsync.EUnsupportedMedia, "Content-Type must be application/json or multipart/form-data.")
	}
	sc, err := s.beginSend(w, r, hash)
	if err != nil || sc.replay {
		return err
	}
	v := wabsync.ValidationErrors{}
	m := outbound(sc.sess, "", req.To, v)
	if req.Kind != "" && !wabsync.IsMediaKind(req.Kind) {
		v.Add("kind", "must be one of image, video, audio, voice, document, sticker")
	}
	if utf8.RuneCountInString(req.Caption) > maxCaption {
		v.Add("caption", "must be at most 4096 characters")
	}
	if req.MimeType != "" {
		if pm, _, err := mime.ParseMediaType(req.MimeType); err != nil || !strings.Contains(pm, "/") {
			v.Add("mime_type", "must be a MIME type like image/png")
		}
	}
	if blob == nil {
		switch {
		case req.URL != "" && req.Base64 != "":
			v.Add("url", "give either url or base64, not both")
		case req.URL == "" && req.Base64 == "":
			v.Add("url", "give the file as url or base64 (or send multipart/form-data with a file part)")
		}
	}
	if err := s.setReplyTo(r, sc.sess.ID, m, req.ReplyTo, v); err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	filename := req.Filename
	if blob == nil {
		var b media.Blob
		if req.URL != "" {
			if s.media.Fetcher == nil {
				return wabsync.Errorf(wabsync.EUnavailable, "Fetching URLs is not configured.")
			}
			var name, ctype string
			b, name, ctype, err = s.media.Fetcher.Fetch(r.Context(), req.URL)
			if err != nil {
				return err
			}
			if filename == "" {
				filename = name
			}
			partType = ctype
		} else {
			b, err = s.media.Blobs.PutBase64(r.Context(), req.Base64, s.cfg.MaxUpload)
			if err != nil {
				return err
			}
		}
		blob = &b
	}
	if blob.Size == 0 {
		return fieldError(wabsync.EValidation, "file", "is empty")
	}
	// The type: the one the request says, else the upload's or download's,
	// else what the bytes look like. Executables are refused whatever they
	// claim to be.
	mimeType := req.MimeType
	if mimeType == "" && partType != "" && partType != "application/octet-stream" {
		mimeType = partType
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
	m.Media = &wabsync.Media{MimeType: mimeType, Size: blob.Size, SHA256: blob.SHA256, Filename: media.SanitizeFilename(filename), BlobKey: blob.Key}
	if m.Media.Filename == "" || m.Media.Filename == "." {
		m.Media.Filename = ""
	}
	return s.accept(w, r, sc, m, hash, req.QueueIfOffline)
}

// readMultipartFile reads the form fields into req and streams the "file"
// part into the blob store. The hash for Idempotency-Key covers the fields
// and the file's SHA-256.
func (s *Server) readMultipartFile(w http.ResponseWriter, r *http.Request, req *sendFileRequest) (*media.Blob, string, string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload+s.cfg.MaxJSON)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, "", "", errorf(wabsync.EBadRequest, "The multipart body could not be read.")
	}
	var blob *media.Blob
	var partType string
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
			return nil, "", "", tooLargeOr(err, errorf(wabsync.EBadRequest, "The multipart body could not be read."))
		}
		name := p.FormName()
		if name == "file" {
			if blob != nil {
				v.Add("file", "only one file per message")
				p.Close()
				continue
			}
			b, err := s.media.Blobs.Put(r.Context(), p, s.cfg.MaxUpload)
			if err != nil {
				return nil, "", "", tooLargeOr(err, err)
			}
			blob = &b
			partType, _, _ = mime.ParseMediaType(p.Header.Get("Content-Type"))
			if req.Filename == "" {
				req.Filename = p.FileName()
			}
			parts = append(parts, []byte("file="+b.SHA256))
			continue
		}
		val, err := io.ReadAll(io.LimitReader(p, 64<<10+1))
		if err != nil {
			return nil, "", "", tooLargeOr(err, errorf(wabsync.EBadRequest, "The multipart body could not be read."))
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
	if blob == nil {
		v.Add("file", "is required: a part named file")
	}
	if err := v.Err(); err != nil {
		return nil, "", "", err
	}
	return blob, partType, requestHash(r, parts...), nil
}

func tooLargeOr(err, other error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || errors.Is(err, media.ErrTooLarge) {
		return errorf(wabsync.EPayloadTooLarge, "The file is larger than the limit (WABSYNC_MAX_UPLOAD).")
	}
	return other
}
