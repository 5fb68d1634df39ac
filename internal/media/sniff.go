package media

import (
	"bytes"
	"encoding/binary"
	"net/http"

	"github.com/gabriel-vasile/mimetype"
)

// sniffLen is how many leading bytes Sniff looks at.
const sniffLen = 512

// mimeOggOpus is how WhatsApp names a voice note.
const mimeOggOpus = "audio/ogg; codecs=opus"

// whatsAppNames renames the library's names of ISO media audio and video to
// the ones WhatsApp lists for its media (audio/mp4, video/mp4).
var whatsAppNames = map[string]string{
	"audio/x-m4a": "audio/mp4",
	"video/x-m4v": "video/mp4",
}

// Sniff returns the MIME type of a file from its first bytes (at most 512 are
// looked at). Detection is github.com/gabriel-vasile/mimetype's; on top of it
// Sniff adds only what WhatsApp needs:
//   - Ogg audio whose first packet is an Opus header is
//     "audio/ogg; codecs=opus", which KindForMime makes a voice note;
//   - M4A and M4V take WhatsApp's names, audio/mp4 and video/mp4;
//   - a DOS "MZ" header counts as a Windows executable only when it points to
//     a "PE" signature, so that a text starting with "MZ" is not refused by
//     AllowedMime (net/http's sniffer names it instead).
//
// An empty file is application/octet-stream.
func Sniff(data []byte) string {
	if len(data) > sniffLen {
		data = data[:sniffLen]
	}
	if len(data) == 0 {
		return "application/octet-stream"
	}
	m := mimetype.Detect(data)
	switch ct := m.String(); {
	case ct == "audio/ogg" && oggOpus(data):
		return mimeOggOpus
	case m.Is("application/vnd.microsoft.portable-executable") && !peSignature(data):
		return http.DetectContentType(data)
	case whatsAppNames[ct] != "":
		return whatsAppNames[ct]
	default:
		return ct
	}
}

// oggOpus reports whether the first packet of an Ogg stream, after the first
// page's header (27 bytes) and segment table, is an Opus header.
func oggOpus(b []byte) bool {
	if len(b) < 27 || len(b) < 27+int(b[26]) {
		return false
	}
	return bytes.HasPrefix(b[27+int(b[26]):], []byte("OpusHead"))
}

// peSignature reports whether a DOS header points to the "PE\0\0" signature
// of a Windows executable. A text that happens to start with "MZ" points
// nowhere sensible; a plausible offset past the bytes seen is taken for an
// executable.
func peSignature(b []byte) bool {
	if len(b) < 0x40 {
		return false
	}
	off := binary.LittleEndian.Uint32(b[0x3c:0x40])
	switch {
	case off < 0x40 || off > 0x10000:
		return false
	case int(off)+4 <= len(b):
		return string(b[off:off+4]) == "PE\x00\x00"
	default:
		return true
	}
}
