package whatsmeow

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"

	"go.mau.fi/whatsmeow"

	"github.com/wabsync/wabsync"
)

// Media kinds of a mediaRef.
const (
	mediaImage    = "image"
	mediaVideo    = "video"
	mediaAudio    = "audio"
	mediaDocument = "document"
	mediaSticker  = "sticker"
)

// mediaRef is what the engine needs to download inbound media later: the
// path on WhatsApp's media servers, the key and the hashes. It is stored
// with the message (InboundMedia.Ref) as JSON. The media key decrypts the
// file: the Ref must be kept like the message itself, and never logged.
type mediaRef struct {
	V             int    `json:"v"`
	DirectPath    string `json:"path"`
	MediaKey      []byte `json:"key"`
	FileEncSHA256 []byte `json:"enc_sha256"`
	FileSHA256    []byte `json:"sha256"`
	Length        uint64 `json:"len"`
	Type          string `json:"type"`
	MimeType      string `json:"mime,omitempty"`
}

func (r mediaRef) encode() string {
	r.V = 1
	b, _ := json.Marshal(r)
	return string(b)
}

func decodeMediaRef(s string) (mediaRef, error) {
	var r mediaRef
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, err
	}
	if r.V != 1 || !strings.HasPrefix(r.DirectPath, "/") || len(r.MediaKey) == 0 || waMediaType(r.Type) == "" {
		return r, errors.New("incomplete media reference")
	}
	return r, nil
}

// waMediaType is whatsmeow's media type (the key derivation info) of a kind.
func waMediaType(kind string) whatsmeow.MediaType {
	switch kind {
	case mediaImage, mediaSticker:
		return whatsmeow.MediaImage
	case mediaVideo:
		return whatsmeow.MediaVideo
	case mediaAudio:
		return whatsmeow.MediaAudio
	case mediaDocument:
		return whatsmeow.MediaDocument
	}
	return ""
}

// mmsType is the media server's name for a whatsmeow media type.
func mmsType(mt whatsmeow.MediaType) string {
	switch mt {
	case whatsmeow.MediaImage:
		return "image"
	case whatsmeow.MediaVideo:
		return "video"
	case whatsmeow.MediaAudio:
		return "audio"
	case whatsmeow.MediaDocument:
		return "document"
	}
	return ""
}

// DownloadMedia downloads and decrypts inbound media by the Ref of its
// InboundMedia. The bytes are staged in an unlinked temporary file (never
// held in memory); the returned reader reads them and removes the file on
// Close. Media WhatsApp no longer has (it keeps it for a limited time) gives
// an EngineError with code MEDIA_NOT_FOUND.
func (e *Engine) DownloadMedia(ctx context.Context, ref string) (io.ReadCloser, error) {
	r, err := decodeMediaRef(ref)
	if err != nil {
		return nil, &wabsync.EngineError{Code: wabsync.MsgErrMediaMissing, Message: "the media reference is not valid", Permanent: true}
	}
	cli, _, err := e.loggedInClient()
	if err != nil {
		return nil, err
	}
	f, err := e.tempFile("wabsync-download-*")
	if err != nil {
		return nil, err
	}
	mt := waMediaType(r.Type)
	err = cli.DownloadMediaWithPathToFile(ctx, r.DirectPath, r.FileEncSHA256, r.FileSHA256, r.MediaKey, mt, mmsType(mt), false, f.File)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		return nil, downloadError(err)
	}
	return f, nil
}

func downloadError(err error) error {
	switch {
	case errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith403), errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith404),
		errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith410):
		return &wabsync.EngineError{Code: wabsync.MsgErrMediaMissing, Message: "WhatsApp no longer has this media", Permanent: true}
	case errors.Is(err, whatsmeow.ErrInvalidMediaHMAC), errors.Is(err, whatsmeow.ErrInvalidMediaEncSHA256),
		errors.Is(err, whatsmeow.ErrInvalidMediaSHA256), errors.Is(err, whatsmeow.ErrTooShortFile):
		return &wabsync.EngineError{Code: CodeMediaDownloadFailed, Message: "the downloaded media did not match its hashes", Permanent: true}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &wabsync.EngineError{Code: CodeMediaDownloadFailed, Message: "the download was cancelled"}
	}
	return &wabsync.EngineError{Code: CodeMediaDownloadFailed, Message: "could not download the media from WhatsApp"}
}

// stagedFile is a temporary file that is gone once closed. On systems that
// allow it the name is removed at once, so nothing is left behind even if
// the process dies.
type stagedFile struct {
	*os.File
	name string // still to remove on Close, or ""
}

func (e *Engine) tempFile(pattern string) (*stagedFile, error) {
	f, err := os.CreateTemp(e.f.opts.TempDir, pattern)
	if err != nil {
		e.log.Error("whatsmeow: create temporary file", "err", err)
		return nil, &wabsync.EngineError{Code: CodeMediaDownloadFailed, Message: "could not stage the media on disk"}
	}
	s := &stagedFile{File: f, name: f.Name()}
	if os.Remove(f.Name()) == nil {
		s.name = ""
	}
	return s, nil
}

// Close closes and removes the file.
func (s *stagedFile) Close() error {
	err := s.File.Close()
	if s.name != "" {
		_ = os.Remove(s.name)
	}
	return err
}
