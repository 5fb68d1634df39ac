package media

import (
	"mime"
	"strings"

	"github.com/wabsync/wabsync"
)

// refusedMime are the executable and installer types AllowedMime refuses.
var refusedMime = map[string]bool{
	"application/x-msdownload":                      true,
	"application/x-msdos-program":                   true,
	"application/x-dosexec":                         true,
	"application/vnd.microsoft.portable-executable": true,
	"application/x-ms-installer":                    true,
	"application/x-msi":                             true,
	"application/x-executable":                      true,
	"application/x-pie-executable":                  true,
	"application/x-sharedlib":                       true,
	"application/x-elf":                             true,
	"application/x-mach-binary":                     true,
	"application/x-mach-o-executable":               true,
	"application/java-vm":                           true,
	"application/x-java-applet":                     true,
}

// AllowedMime reports whether files of MIME type m may be sent. The rule: a
// type that does not parse is refused, and so are native executables,
// libraries and installers — Windows (PE, MSI), ELF, Mach-O and Java class
// files, under any of their usual names (application/x-msdownload,
// application/x-executable, application/x-sharedlib,
// application/x-mach-binary, …); everything else is allowed, since WhatsApp
// carries any document. Parameters and case are ignored. Callers check the
// type Sniff found and any type the user declared, so that neither a
// misleading name nor misleading bytes get an executable through.
func AllowedMime(m string) bool {
	t, ok := baseType(m)
	return ok && !refusedMime[t]
}

// KindForMime returns the kind of message (wabsync.KindImage, …) a file of
// MIME type m makes when the request does not say, and false when the type
// is not allowed at all (AllowedMime). The rule:
//   - image/* is an image, image/webp included (a sticker must be asked for
//     with kind "sticker"), except image/svg+xml, a document;
//   - video/* is a video;
//   - Opus audio — audio/ogg with codecs=opus, or audio/opus — is a voice
//     note, which is how WhatsApp records them; any other audio/* is audio;
//   - anything else allowed is a document.
func KindForMime(m string) (kind string, ok bool) {
	t, ok := baseType(m)
	if !ok || refusedMime[t] {
		return "", false
	}
	major, minor, _ := strings.Cut(t, "/")
	switch major {
	case "image":
		if minor == "svg+xml" {
			return wabsync.KindDocument, true
		}
		return wabsync.KindImage, true
	case "video":
		return wabsync.KindVideo, true
	case "audio":
		if minor == "opus" {
			return wabsync.KindVoice, true
		}
		if minor == "ogg" {
			_, params, _ := mime.ParseMediaType(m)
			for _, c := range strings.Split(params["codecs"], ",") {
				if strings.EqualFold(strings.TrimSpace(c), "opus") {
					return wabsync.KindVoice, true
				}
			}
		}
		return wabsync.KindAudio, true
	}
	return wabsync.KindDocument, true
}

// baseType returns m's type/subtype in lower case, without parameters.
func baseType(m string) (string, bool) {
	t, _, err := mime.ParseMediaType(m)
	if err != nil && err != mime.ErrInvalidMediaParameter {
		return "", false
	}
	if !strings.Contains(t, "/") {
		return "", false
	}
	return t, true
}
