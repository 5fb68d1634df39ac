package whatsmeow

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
)

type countingStringer struct{ n *int }

func (c countingStringer) String() string { *c.n++; return "formatted" }

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestWALogger(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("session_id", "ses_1")
	l := newWALogger(base, "")

	l.Infof("connected to %s", "web.whatsapp.com")
	l.Sub("Client").Sub("Socket").Warnf("frame %d dropped", 7)
	l.Sub("Send").Errorf("<message to=%q>", "x") // wire dump: dropped
	l.Sub("Recv").Sub("X").Warnf("<receipt/>")   // under a wire dump: dropped
	l.Sub("QRChannel").Infof("Emitting QR code %s", "2@secret,noise,identity,adv")
	l.Errorf("Errored frame hex: %s", "deadbeef")
	calls := 0
	l.Debugf("noise %s", countingStringer{&calls}) // below the level: not even formatted

	lines := logLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("lines = %v", lines)
	}
	if lines[0]["msg"] != "connected to web.whatsapp.com" || lines[0]["level"] != "INFO" || lines[0]["session_id"] != "ses_1" || lines[0]["wa_module"] != nil {
		t.Errorf("line 0 = %v", lines[0])
	}
	if lines[1]["msg"] != "frame 7 dropped" || lines[1]["level"] != "WARN" || lines[1]["wa_module"] != "Client/Socket" || lines[1]["session_id"] != "ses_1" {
		t.Errorf("line 1 = %v", lines[1])
	}
	if calls != 0 {
		t.Errorf("debug arguments formatted %d times with debug off", calls)
	}
	if strings.Contains(buf.String(), "secret") || strings.Contains(buf.String(), "deadbeef") {
		t.Error("key material in the log")
	}

	buf.Reset()
	dbg := newWALogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "Store")
	dbg.Debugf("upgrading %s", countingStringer{&calls})
	if lines := logLines(t, &buf); len(lines) != 1 || lines[0]["level"] != "DEBUG" || lines[0]["wa_module"] != "Store" || calls != 1 {
		t.Errorf("debug line = %v (formatted %d)", lines, calls)
	}
	if newWALogger(nil, "") == nil {
		t.Error("nil logger")
	}
}

// The engine's logs carry the session id.
func TestEngineLogsSessionID(t *testing.T) {
	var buf bytes.Buffer
	f := MustFactory(t, Options{})
	e, err := f.NewEngine(engineOptionsWithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
	if err != nil {
		t.Fatal(err)
	}
	eng := e.(*Engine)
	eng.log.Info("hello")
	newWALogger(eng.log, "").Sub("Client").Warnf("whatsmeow says %d", 1)
	for _, line := range logLines(t, &buf) {
		if line["session_id"] != "ses_log" || line["engine"] != "whatsmeow" {
			t.Errorf("line without session: %v", line)
		}
	}
}

func engineOptionsWithLogger(l *slog.Logger) wabsync.EngineOptions {
	return wabsync.EngineOptions{SessionID: "ses_log", Name: "log", Handler: newRecorder().handle, Logger: l}
}
