package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// DecodeData decodes the event's data into v: a *Message for message.*
// events, a *SessionStatusData for session.status, a *SessionQRData for
// session.qr, a *PresenceData for presence.update (see EventType).
func (e *Event) DecodeData(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("wabsync: event %s has no data", e.ID)
	}
	return json.Unmarshal(e.Data, v)
}

// StreamEvents reads a session's events as Server-Sent Events and calls fn
// with each, in sequence order, until ctx is done (it returns ctx.Err()), fn
// returns an error (it returns that error), or the server ends the stream (it
// returns nil). params may be nil (start with the next new event), or set
// After (or LastEventID) to the last sequence seen to replay what came after
// it first — so a caller resumes with:
//
//	after := last.Sequence
//	err := c.StreamEvents(ctx, "me", &client.StreamSessionEventsParams{After: &after}, fn)
func (c *Client) StreamEvents(ctx context.Context, session string, params *StreamSessionEventsParams, fn func(*Event) error, opts ...RequestEditorFn) error {
	opts = append([]RequestEditorFn{func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", "text/event-stream")
		return nil
	}}, opts...)
	resp, err := c.ClientInterface.StreamSessionEvents(ctx, session, params, opts...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return unexpected(resp, body)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("wabsync: events: unexpected Content-Type %q", resp.Header.Get("Content-Type"))
	}
	err = readSSE(resp.Body, func(typ, data string) error {
		var ev Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("wabsync: events: decode %s event: %w", typ, err)
		}
		return fn(&ev)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readSSE parses a text/event-stream and calls dispatch with the type and
// data of each event; comments (heartbeats) and unknown fields are skipped.
// It returns nil at the end of the stream.
func readSSE(r io.Reader, dispatch func(typ, data string) error) error {
	br := bufio.NewReader(r)
	var typ string
	var data strings.Builder
	var hasData bool
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil // an event not ended by a blank line is incomplete: dropped
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if hasData {
				t := typ
				if t == "" {
					t = "message"
				}
				if err := dispatch(t, data.String()); err != nil {
					return err
				}
			}
			typ, hasData = "", false
			data.Reset()
		case strings.HasPrefix(line, ":"):
			// A comment: the heartbeat.
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				typ = value
			case "data":
				if hasData {
					data.WriteByte('\n')
				}
				data.WriteString(value)
				hasData = true
			}
		}
	}
}
