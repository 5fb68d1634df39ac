// Package client is the Go SDK of the WabSync API.
//
// Every operation of the contract (api/openapi.yaml) is generated into
// client.gen.go by oapi-codegen: typed request bodies, parameters and
// responses, as XxxWithResponse methods. This file adds what reads better by
// hand: the token on every request, errors as *APIError, and convenience
// methods that return the response's data directly.
//
//	c, err := client.New("http://localhost:8080", os.Getenv("WABSYNC_TOKEN"))
//	msg, err := c.SendText(ctx, "me", client.SendTextRequest{To: "+14155550123", Text: "Hello"})
//	if e, ok := client.AsAPIError(err); ok && e.Code == "VALIDATION_ERROR" { … }
//
// To regenerate client.gen.go after changing the contract: go generate ./client
package client

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Option configures a Client: WithHTTPClient (any HttpRequestDoer, e.g. an
// *http.Client with a timeout or a validating transport), WithRequestEditorFn
// (change every request), WithUserAgent.
type Option = ClientOption

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("User-Agent", ua)
		return nil
	})
}

// WithIdempotencyKey returns a per-request option that sets the Idempotency-Key
// header: retrying a POST with the same key and body returns the first
// response and does nothing again.
//
//	c.SendText(ctx, "me", req, client.WithIdempotencyKey(orderID))
func WithIdempotencyKey(key string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Idempotency-Key", key)
		return nil
	}
}

// Client is a WabSync API client. It embeds the generated
// *ClientWithResponses, so every operation is available as XxxWithResponse;
// the methods defined here return the response's data, or an *APIError for
// an error response. It is safe for concurrent use.
type Client struct {
	*ClientWithResponses
}

// New returns a client of the server at baseURL (e.g. "http://localhost:8080")
// that authenticates with token: an admin token (WBA|…) or a session token
// (WBT|…). An empty token sends no Authorization header (public endpoints).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("wabsync: base URL %q: want http:// or https://", baseURL)
	}
	all := []Option{WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if req.Header.Get("User-Agent") == "" {
			req.Header.Set("User-Agent", "wabsync-go")
		}
		return nil
	})}
	c, err := NewClientWithResponses(baseURL, append(all, opts...)...)
	if err != nil {
		return nil, err
	}
	return &Client{ClientWithResponses: c}, nil
}

// data returns &env.Data when the response carried the documented envelope,
// and the error otherwise.
func data[E any, D any](env *E, pick func(*E) *D, resp *http.Response, body []byte) (*D, error) {
	if env == nil {
		return nil, unexpected(resp, body)
	}
	return pick(env), nil
}

// CreateSession creates a session (admin). The result carries the session and
// its session token, which is shown only this once.
func (c *Client) CreateSession(ctx context.Context, req CreateSessionRequest, opts ...RequestEditorFn) (*SessionCreated, error) {
	r, err := c.CreateSessionWithResponse(ctx, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, func(e *SessionCreatedResponse) *SessionCreated { return &e.Data }, r.HTTPResponse, r.Body)
}

// ListSessions returns a page of sessions (admin); params may be nil.
func (c *Client) ListSessions(ctx context.Context, params *ListSessionsParams, opts ...RequestEditorFn) (*SessionList, error) {
	r, err := c.ListSessionsWithResponse(ctx, params, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, func(e *SessionListResponse) *SessionList { return &e.Data }, r.HTTPResponse, r.Body)
}

// GetSession returns a session by id, or "me".
func (c *Client) GetSession(ctx context.Context, session string, opts ...RequestEditorFn) (*Session, error) {
	r, err := c.GetSessionWithResponse(ctx, session, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, sessionData, r.HTTPResponse, r.Body)
}

// UpdateSession changes a session's name, config or metadata.
func (c *Client) UpdateSession(ctx context.Context, session string, req UpdateSessionRequest, opts ...RequestEditorFn) (*Session, error) {
	r, err := c.UpdateSessionWithResponse(ctx, session, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, sessionData, r.HTTPResponse, r.Body)
}

// DeleteSession logs a session out and deletes it with its data (admin).
func (c *Client) DeleteSession(ctx context.Context, session string, opts ...RequestEditorFn) error {
	r, err := c.DeleteSessionWithResponse(ctx, session, opts...)
	if err != nil {
		return err
	}
	_, err = data(r.JSON200, func(e *DeletedResponse) *Deleted { return &e.Data }, r.HTTPResponse, r.Body)
	return err
}

// Connect starts a session; it returns the session as it is now (usually
// "starting"). Watch its status with GetSession or StreamEvents.
func (c *Client) Connect(ctx context.Context, session string, opts ...RequestEditorFn) (*Session, error) {
	r, err := c.ConnectSessionWithResponse(ctx, session, nil, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, sessionData, r.HTTPResponse, r.Body)
}

// Disconnect stops a session's connection and keeps its link.
func (c *Client) Disconnect(ctx context.Context, session string, opts ...RequestEditorFn) (*Session, error) {
	r, err := c.DisconnectSessionWithResponse(ctx, session, nil, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, sessionData, r.HTTPResponse, r.Body)
}

// Logout unlinks a session's device; the next Connect needs a new scan.
func (c *Client) Logout(ctx context.Context, session string, opts ...RequestEditorFn) (*Session, error) {
	r, err := c.LogoutSessionWithResponse(ctx, session, nil, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, sessionData, r.HTTPResponse, r.Body)
}

// Restart disconnects and connects a session again at once.
func (c *Client) Restart(ctx context.Context, session string, opts ...RequestEditorFn) (*Session, error) {
	r, err := c.RestartSessionWithResponse(ctx, session, nil, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, sessionData, r.HTTPResponse, r.Body)
}

// QRCode returns the QR code a session in "scan_qr" shows.
func (c *Client) QRCode(ctx context.Context, session string, opts ...RequestEditorFn) (*QRCode, error) {
	r, err := c.GetSessionQRWithResponse(ctx, session, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, func(e *QRCodeResponse) *QRCode { return &e.Data }, r.HTTPResponse, r.Body)
}

// PairCode starts linking by code for phone and returns the code to type on
// the phone ("ABCD-EFGH").
func (c *Client) PairCode(ctx context.Context, session, phone string, opts ...RequestEditorFn) (string, error) {
	r, err := c.RequestPairCodeWithResponse(ctx, session, nil, PairCodeRequest{Phone: phone}, opts...)
	if err != nil {
		return "", err
	}
	d, err := data(r.JSON200, func(e *PairCodeResponse) *PairCode { return &e.Data }, r.HTTPResponse, r.Body)
	if err != nil {
		return "", err
	}
	return d.Code, nil
}

// RotateToken issues a new session token and revokes the old one at once.
func (c *Client) RotateToken(ctx context.Context, session string, opts ...RequestEditorFn) (string, error) {
	r, err := c.RotateSessionTokenWithResponse(ctx, session, nil, opts...)
	if err != nil {
		return "", err
	}
	d, err := data(r.JSON200, func(e *TokenResponse) *NewToken { return &e.Data }, r.HTTPResponse, r.Body)
	if err != nil {
		return "", err
	}
	return d.Token, nil
}

// SendText queues a text message; the result is the stored message, "queued".
func (c *Client) SendText(ctx context.Context, session string, req SendTextRequest, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.SendTextWithResponse(ctx, session, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, messageData, r.HTTPResponse, r.Body)
}

// SendFile queues a file message given by URL or base64 (see UploadFile to
// stream a file from an io.Reader).
func (c *Client) SendFile(ctx context.Context, session string, req SendFileRequest, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.SendFileWithResponse(ctx, session, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, messageData, r.HTTPResponse, r.Body)
}

// SendLocation queues a location message.
func (c *Client) SendLocation(ctx context.Context, session string, req SendLocationRequest, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.SendLocationWithResponse(ctx, session, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, messageData, r.HTTPResponse, r.Body)
}

// SendContact queues a message of contact cards.
func (c *Client) SendContact(ctx context.Context, session string, req SendContactRequest, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.SendContactWithResponse(ctx, session, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, messageData, r.HTTPResponse, r.Body)
}

// SendReaction queues a reaction (an empty Emoji removes it).
func (c *Client) SendReaction(ctx context.Context, session string, req SendReactionRequest, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.SendReactionWithResponse(ctx, session, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, messageData, r.HTTPResponse, r.Body)
}

// ListMessages returns a page of a session's messages, newest first; params
// may be nil.
func (c *Client) ListMessages(ctx context.Context, session string, params *ListMessagesParams, opts ...RequestEditorFn) (*MessageList, error) {
	r, err := c.ListMessagesWithResponse(ctx, session, params, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, func(e *MessageListResponse) *MessageList { return &e.Data }, r.HTTPResponse, r.Body)
}

// GetMessage returns a message with its status history.
func (c *Client) GetMessage(ctx context.Context, session, id string, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.GetMessageWithResponse(ctx, session, id, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, messageData, r.HTTPResponse, r.Body)
}

// EditMessage replaces the text of a sent text message.
func (c *Client) EditMessage(ctx context.Context, session, id, text string, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.EditMessageWithResponse(ctx, session, id, EditMessageRequest{Text: text}, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, messageData, r.HTTPResponse, r.Body)
}

// RevokeMessage deletes a sent message for everyone.
func (c *Client) RevokeMessage(ctx context.Context, session, id string, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.RevokeMessageWithResponse(ctx, session, id, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, messageData, r.HTTPResponse, r.Body)
}

// MarkRead marks an inbound message, and the earlier ones of its chat, read.
func (c *Client) MarkRead(ctx context.Context, session, id string, opts ...RequestEditorFn) (*Message, error) {
	r, err := c.MarkMessageReadWithResponse(ctx, session, id, nil, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON200, messageData, r.HTTPResponse, r.Body)
}

// CreateWebhook adds a webhook endpoint for a session's events; the result
// carries its signing secret, shown only this once.
func (c *Client) CreateWebhook(ctx context.Context, session string, req CreateWebhookRequest, opts ...RequestEditorFn) (*WebhookWithSecret, error) {
	r, err := c.CreateWebhookWithResponse(ctx, session, nil, req, opts...)
	if err != nil {
		return nil, err
	}
	return data(r.JSON201, func(e *WebhookCreatedResponse) *WebhookWithSecret { return &e.Data }, r.HTTPResponse, r.Body)
}

func sessionData(e *SessionResponse) *Session { return &e.Data }

func messageData(e *MessageResponse) *Message { return &e.Data }
