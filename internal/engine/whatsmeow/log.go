package whatsmeow

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	waLog "go.mau.fi/whatsmeow/util/log"
)

// slogLogger adapts whatsmeow's waLog.Logger to log/slog. Sub(module) adds to
// the "wa_module" attribute ("Client/Socket"); the session id comes from the
// *slog.Logger it wraps.
//
// Some whatsmeow lines would put secrets or raw traffic in the logs: the
// wire dumps of the "Send" and "Recv" sub-loggers (every stanza), QR codes
// (they carry the device's ADV secret) and hex dumps of frames that failed to
// decode. Those are dropped at every level.
type slogLogger struct {
	base   *slog.Logger // without the wa_module attribute
	l      *slog.Logger // base with wa_module
	module string
	// mute drops everything (the wire dump sub-loggers).
	mute bool
}

var _ waLog.Logger = (*slogLogger)(nil)

// newWALogger returns a waLog.Logger that writes to l.
func newWALogger(l *slog.Logger, module string) waLog.Logger {
	if l == nil {
		return waLog.Noop
	}
	return &slogLogger{base: l, l: withModule(l, module), module: module}
}

func withModule(l *slog.Logger, module string) *slog.Logger {
	if module == "" {
		return l
	}
	return l.With("wa_module", module)
}

// mutedModules are sub-loggers whose every line is a raw stanza dump.
var mutedModules = map[string]bool{"Send": true, "Recv": true}

// secretFormats are format-string prefixes of lines that carry key material
// or raw decrypted frames.
var secretFormats = []string{
	"Emitting QR code",
	"Errored frame hex",
}

// Sub returns a logger for a whatsmeow module.
func (s *slogLogger) Sub(module string) waLog.Logger {
	full := module
	if s.module != "" {
		full = s.module + "/" + module
	}
	return &slogLogger{base: s.base, l: withModule(s.base, full), module: full, mute: s.mute || mutedModules[module]}
}

func (s *slogLogger) Debugf(msg string, args ...any) { s.log(slog.LevelDebug, msg, args) }
func (s *slogLogger) Infof(msg string, args ...any)  { s.log(slog.LevelInfo, msg, args) }
func (s *slogLogger) Warnf(msg string, args ...any)  { s.log(slog.LevelWarn, msg, args) }
func (s *slogLogger) Errorf(msg string, args ...any) { s.log(slog.LevelError, msg, args) }

func (s *slogLogger) log(level slog.Level, format string, args []any) {
	if s.mute {
		return
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return // no formatting cost for debug noise when debug is off
	}
	for _, p := range secretFormats {
		if strings.HasPrefix(format, p) {
			return
		}
	}
	s.l.Log(ctx, level, fmt.Sprintf(format, args...))
}
