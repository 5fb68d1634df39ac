package media

import (
	"bytes"
	"encoding/binary"
	"net/http"
)

// sniffLen is how many leading bytes Sniff looks at.
const sniffLen = 512

// MIME types Sniff returns beyond http.DetectContentType's.
const (
	mimeOggOpus = "audio/ogg; codecs=opus"
	mimeDocx    = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	mimeXlsx    = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	mimePptx    = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
)

// Sniff returns the MIME type of a file from its first bytes (at most 512 are
// looked at). It is http.DetectContentType with more signatures:
//   - Ogg by codec: "audio/ogg; codecs=opus" (WhatsApp voice notes),
//     "audio/ogg" (Vorbis, Speex, FLAC), "video/ogg" (Theora);
//   - ISO media by brand: video/mp4, video/3gpp, video/3gpp2, audio/mp4
//     (M4A), video/quicktime, image/heic, image/heif, image/avif;
//   - ZIP containers: the OOXML (docx, xlsx, pptx), OpenDocument and EPUB
//     types when the first entries show them, application/zip otherwise;
//   - MPEG audio without an ID3 tag (audio/mpeg), AAC ADTS (audio/aac),
//     AMR (audio/amr), FLAC (audio/flac), 7-Zip;
//   - executables, so that AllowedMime can refuse them:
//     application/x-msdownload (Windows PE), application/x-executable and
//     application/x-sharedlib (ELF), application/x-mach-binary (Mach-O),
//     application/java-vm (Java class files).
//
// An empty file is application/octet-stream.
func Sniff(data []byte) string {
	if len(data) > sniffLen {
		data = data[:sniffLen]
	}
	if len(data) == 0 {
		return "application/octet-stream"
	}
	if ct := sniffFirst(data); ct != "" {
		return ct
	}
	ct := http.DetectContentType(data)
	if ct == "application/octet-stream" {
		if c := sniffLast(data); c != "" {
			return c
		}
	}
	return ct
}

// sniffFirst knows signatures that http.DetectContentType misses or names
// too broadly.
func sniffFirst(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return sniffELF(b)
	case bytes.HasPrefix(b, []byte("MZ")):
		return sniffPE(b)
	case hasAnyPrefix(b, "\xfe\xed\xfa\xce", "\xfe\xed\xfa\xcf", "\xce\xfa\xed\xfe", "\xcf\xfa\xed\xfe", "\xca\xfe\xba\xbf"):
		return "application/x-mach-binary"
	case bytes.HasPrefix(b, []byte("\xca\xfe\xba\xbe")) && len(b) >= 8:
		// Both fat Mach-O and Java classes: a fat binary counts its
		// architectures here, a class file has its version (≥ 45).
		if n := binary.BigEndian.Uint32(b[4:8]); n > 0 && n < 45 {
			return "application/x-mach-binary"
		}
		return "application/java-vm"
	case bytes.HasPrefix(b, []byte("OggS")):
		return sniffOgg(b)
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		return sniffISOMedia(b)
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return sniffZip(b)
	}
	return ""
}

// sniffLast knows signatures too weak to be tried before
// http.DetectContentType.
func sniffLast(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("#!AMR\n")):
		return "audio/amr"
	case bytes.HasPrefix(b, []byte("fLaC")):
		return "audio/flac"
	case bytes.HasPrefix(b, []byte("7z\xbc\xaf\x27\x1c")):
		return "application/x-7z-compressed"
	case len(b) >= 4 && b[0] == 0xff && b[1]&0xe0 == 0xe0:
		// An MPEG audio frame header: 11 sync bits, then version and layer.
		layer := b[1] >> 1 & 3
		version := b[1] >> 3 & 3
		bitrate := b[2] >> 4
		rate := b[2] >> 2 & 3
		if layer == 0 && b[1]&0xf6 == 0xf0 {
			return "audio/aac" // ADTS: MPEG-4 or MPEG-2 AAC, layer bits 00
		}
		if layer != 0 && version != 1 && bitrate != 0xf && rate != 3 {
			return "audio/mpeg"
		}
	}
	return ""
}

func hasAnyPrefix(b []byte, prefixes ...string) bool {
	for _, p := range prefixes {
		if bytes.HasPrefix(b, []byte(p)) {
			return true
		}
	}
	return false
}

func sniffELF(b []byte) string {
	if len(b) >= 18 {
		var typ uint16
		if b[5] == 2 {
			typ = binary.BigEndian.Uint16(b[16:18])
		} else {
			typ = binary.LittleEndian.Uint16(b[16:18])
		}
		if typ == 3 { // ET_DYN: a shared library (or a position-independent executable)
			return "application/x-sharedlib"
		}
	}
	return "application/x-executable"
}

// sniffPE recognises a Windows executable by the "PE\0\0" signature its DOS
// header points to. A text that happens to start with "MZ" points nowhere
// sensible.
func sniffPE(b []byte) string {
	if len(b) < 0x40 {
		return ""
	}
	off := binary.LittleEndian.Uint32(b[0x3c:0x40])
	switch {
	case off < 0x40 || off > 0x10000:
		return ""
	case int(off)+4 <= len(b):
		if string(b[off:off+4]) == "PE\x00\x00" {
			return "application/x-msdownload"
		}
		return ""
	default:
		// The signature is past what we see; a DOS header with a
		// plausible offset is taken for an executable.
		return "application/x-msdownload"
	}
}

// sniffOgg names an Ogg file by the codec of its first packet, which follows
// the first page's header (27 bytes) and segment table.
func sniffOgg(b []byte) string {
	if len(b) < 27 || len(b) < 27+int(b[26]) {
		return "application/ogg"
	}
	p := b[27+int(b[26]):]
	switch {
	case bytes.HasPrefix(p, []byte("OpusHead")):
		return mimeOggOpus
	case bytes.HasPrefix(p, []byte("\x01vorbis")), bytes.HasPrefix(p, []byte("Speex   ")),
		bytes.HasPrefix(p, []byte("\x7fFLAC")):
		return "audio/ogg"
	case bytes.HasPrefix(p, []byte("\x80theora")):
		return "video/ogg"
	}
	return "application/ogg"
}

// sniffISOMedia names an ISO base media file (MP4 and kin) by its major
// brand, then by its compatible brands.
func sniffISOMedia(b []byte) string {
	if ct := isoBrand(string(b[8:12])); ct != "" {
		return ct
	}
	size := int(binary.BigEndian.Uint32(b[0:4]))
	if size > len(b) {
		size = len(b)
	}
	for i := 16; i+4 <= size; i += 4 {
		if ct := isoBrand(string(b[i : i+4])); ct != "" {
			return ct
		}
	}
	return ""
}

func isoBrand(brand string) string {
	switch brand {
	case "M4A ", "M4B ", "M4P ", "F4A ":
		return "audio/mp4"
	case "qt  ":
		return "video/quicktime"
	case "heic", "heix", "heim", "heis", "hevc", "hevx":
		return "image/heic"
	case "mif1", "msf1":
		return "image/heif"
	case "avif", "avis":
		return "image/avif"
	case "isom", "iso2", "iso3", "iso4", "iso5", "iso6", "mp41", "mp42", "mp71",
		"avc1", "dash", "M4V ", "M4VH", "M4VP", "F4V ", "MSNV", "NDAS", "mmp4":
		return "video/mp4"
	}
	switch brand[:3] {
	case "3gp", "3ge", "3gg", "3gr", "3gs":
		return "video/3gpp"
	case "3g2":
		return "video/3gpp2"
	}
	return ""
}

// sniffZip recognises the ZIP-based document formats from the names of the
// entries within the first bytes.
func sniffZip(b []byte) string {
	const zip = "application/zip"
	if len(b) < 30 {
		return zip
	}
	nameLen := int(binary.LittleEndian.Uint16(b[26:28]))
	extraLen := int(binary.LittleEndian.Uint16(b[28:30]))
	if 30+nameLen > len(b) {
		return zip
	}
	name := string(b[30 : 30+nameLen])
	if name == "mimetype" && binary.LittleEndian.Uint16(b[8:10]) == 0 { // stored, not compressed
		// The entry's bytes are the type (EPUB, OpenDocument); its size may
		// be in a data descriptor after it, so read up to the next header.
		if start := 30 + nameLen + extraLen; start < len(b) {
			ct := b[start:]
			if i := bytes.Index(ct, []byte("PK")); i >= 0 {
				ct = ct[:i]
			}
			const odf = "application/vnd.oasis.opendocument."
			switch {
			case bytes.HasPrefix(ct, []byte("application/epub+zip")):
				return "application/epub+zip"
			case bytes.HasPrefix(ct, []byte(odf)):
				n := len(odf)
				for n < len(ct) && n < 80 && (ct[n] == '.' || ct[n] == '-' || ct[n] >= 'a' && ct[n] <= 'z') {
					n++
				}
				return string(ct[:n])
			}
		}
		return zip
	}
	ooxml := name == "[Content_Types].xml" || name == "_rels/.rels"
	for _, dir := range []struct{ prefix, ct string }{
		{"word/", mimeDocx}, {"xl/", mimeXlsx}, {"ppt/", mimePptx},
	} {
		if len(name) >= len(dir.prefix) && name[:len(dir.prefix)] == dir.prefix {
			return dir.ct
		}
		if ooxml && containsEntry(b, dir.prefix) {
			return dir.ct
		}
	}
	return zip
}

// containsEntry reports whether a local file header in b names an entry
// under dir.
func containsEntry(b []byte, dir string) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("PK\x03\x04"))
		if j < 0 {
			return false
		}
		h := b[i+j:]
		if len(h) >= 30 {
			n := int(binary.LittleEndian.Uint16(h[26:28]))
			if 30+n <= len(h) && bytes.HasPrefix(h[30:30+n], []byte(dir)) {
				return true
			}
		}
		i += j + 4
	}
}
