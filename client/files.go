package client

import (
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// Upload describes a file to send with UploadFile: the form fields of the
// multipart request, besides the file itself.
type Upload struct {
	// To is the recipient (E.164 phone number or JID). Required.
	To string
	// Filename names the file for the recipient (documents) and the part.
	Filename string
	// MimeType is the file's type; empty lets the server sniff it.
	MimeType string
	// Kind sends the file as image, video, audio, voice, document or sticker;
	// empty infers it from the MIME type.
	Kind MediaKind
	// Caption is shown with the file.
	Caption string
	// ReplyTo quotes a message of the session (its id or wa_id).
	ReplyTo string
	// QueueIfOffline, when non-nil and false, refuses the message with
	// SESSION_NOT_CONNECTED instead of queuing it while the session is offline.
	QueueIfOffline *bool
}

// UploadFile sends the contents of r as a file message, streamed as
// multipart/form-data (never held whole in memory), and returns the queued
// message.
func (c *Client) UploadFile(ctx context.Context, session string, up Upload, r io.Reader, opts ...RequestEditorFn) (*Message, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeUpload(mw, up, r))
	}()
	defer pr.Close() // unblocks the writer if the request ends early
	resp, err := c.SendFileWithBodyWithResponse(ctx, session, nil, mw.FormDataContentType(), pr, opts...)
	if err != nil {
		return nil, err
	}
	return data(resp.JSON201, messageData, resp.HTTPResponse, resp.Body)
}

func writeUpload(mw *multipart.Writer, up Upload, r io.Reader) error {
	fields := []struct{ name, value string }{
		{"to", up.To}, {"filename", up.Filename}, {"mime_type", up.MimeType}, {"kind", string(up.Kind)},
		{"caption", up.Caption}, {"reply_to", up.ReplyTo},
	}
	if up.QueueIfOffline != nil {
		fields = append(fields, struct{ name, value string }{"queue_if_offline", strconv.FormatBool(*up.QueueIfOffline)})
	}
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		if err := mw.WriteField(f.name, f.value); err != nil {
			return err
		}
	}
	h := make(textproto.MIMEHeader)
	name := up.Filename
	if name == "" {
		name = "file"
	}
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": name}))
	ct := up.MimeType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	part, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return err
	}
	return mw.Close()
}

// Download is a file being downloaded; close Body when done.
type Download struct {
	Body io.ReadCloser
	// ContentType is the file's MIME type.
	ContentType string
	// Filename is the file's name when the server knows it.
	Filename string
	// Size is the length in bytes, or -1 when unknown.
	Size int64
}

// DownloadMedia streams the file of a message.
func (c *Client) DownloadMedia(ctx context.Context, session, id string, opts ...RequestEditorFn) (*Download, error) {
	resp, err := c.ClientInterface.GetMessageMedia(ctx, session, id, opts...)
	if err != nil {
		return nil, err
	}
	return download(resp)
}

// QRCodePNG returns the QR code a session in "scan_qr" shows, as a PNG image.
func (c *Client) QRCodePNG(ctx context.Context, session string, opts ...RequestEditorFn) ([]byte, error) {
	opts = append([]RequestEditorFn{func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", "image/png")
		return nil
	}}, opts...)
	resp, err := c.ClientInterface.GetSessionQR(ctx, session, opts...)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "image/png" {
		return nil, unexpected(resp, body)
	}
	return body, nil
}

func download(resp *http.Response) (*Download, error) {
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, unexpected(resp, body)
	}
	d := &Download{Body: resp.Body, ContentType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		d.Filename = params["filename"]
	}
	if d.ContentType == "" {
		d.ContentType = "application/octet-stream"
	}
	return d, nil
}

// DownloadURL streams the file behind a signed media link (an inbound
// message's media.url), which needs no token. url may be absolute or a path
// on this client's server.
func (c *Client) DownloadURL(ctx context.Context, url string) (*Download, error) {
	raw, ok := c.ClientInterface.(*RawClient)
	if !ok {
		return nil, fmt.Errorf("wabsync: DownloadURL needs the standard client")
	}
	if strings.HasPrefix(url, "/") {
		url = strings.TrimSuffix(raw.Server, "/") + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := raw.Client.Do(req)
	if err != nil {
		return nil, err
	}
	return download(resp)
}
