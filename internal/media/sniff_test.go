package media_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
	"testing"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/media"
)

func pngBytes(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8)), nil); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// oggPage is the first page of an Ogg stream whose first packet is packet.
func oggPage(packet string) []byte {
	var b bytes.Buffer
	b.WriteString("OggS")
	b.WriteByte(0)    // version
	b.WriteByte(0x02) // beginning of stream
	b.Write(make([]byte, 8+4+4+4))
	b.WriteByte(1) // one segment
	b.WriteByte(byte(len(packet)))
	b.WriteString(packet)
	return b.Bytes()
}

// isoMedia is the start of an ISO media file with the given brands.
func isoMedia(major string, compatible ...string) []byte {
	size := 16 + 4*len(compatible)
	b := binary.BigEndian.AppendUint32(nil, uint32(size))
	b = append(b, "ftyp"+major+"\x00\x00\x02\x00"+strings.Join(compatible, "")...)
	return append(b, "\x00\x00\x00\x08free"...)
}

func zipBytes(tb testing.TB, names ...string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write([]byte("<x/>"))
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// mimetypeZip is a ZIP whose first entry, stored, is "mimetype" holding ct,
// as EPUB and OpenDocument files are.
func mimetypeZip(tb testing.TB, ct string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "mimetype", Method: zip.Store})
	if err != nil {
		tb.Fatal(err)
	}
	w.Write([]byte(ct))
	w, _ = zw.Create("content.xml")
	w.Write([]byte("<x/>"))
	zw.Close()
	return buf.Bytes()
}

func elfBytes(typ uint16) []byte {
	b := []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	b = binary.LittleEndian.AppendUint16(b, typ)
	return append(b, make([]byte, 46)...)
}

func peBytes() []byte {
	b := make([]byte, 0x100)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x80)
	copy(b[0x80:], "PE\x00\x00")
	return b
}

func TestSniff(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"PNG", pngBytes(t), "image/png"},
		{"JPEG", jpegBytes(t), "image/jpeg"},
		{"GIF", []byte("GIF89a\x01\x00\x01\x00"), "image/gif"},
		{"WebP", []byte("RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"), "image/webp"},
		{"PDF", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), "application/pdf"},
		{"OggOpus", oggPage("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"), "audio/ogg; codecs=opus"},
		{"OggVorbis", oggPage("\x01vorbis\x00\x00\x00\x00\x02\x44\xac\x00\x00"), "audio/ogg"},
		{"OggTheora", oggPage("\x80theora\x03\x02\x01"), "video/ogg"},
		{"OggOther", oggPage("unknown codec"), "application/ogg"},
		{"MP4", isoMedia("isom", "isom", "iso2", "avc1", "mp41"), "video/mp4"},
		{"MP4ByCompatibleBrand", isoMedia("xxxx", "yyyy", "mp42"), "video/mp4"},
		{"3GP", isoMedia("3gp4", "isom", "3gp4"), "video/3gpp"},
		{"3G2", isoMedia("3g2a", "3g2a"), "video/3gpp2"},
		{"M4A", isoMedia("M4A ", "M4A ", "mp42", "isom"), "audio/mp4"}, // the library's audio/x-m4a, renamed
		{"M4V", isoMedia("M4V ", "M4V ", "mp42", "isom"), "video/mp4"}, // the library's video/x-m4v, renamed
		{"QuickTime", isoMedia("qt  ", "qt  "), "video/quicktime"},
		{"HEIC", isoMedia("heic", "mif1", "heic"), "image/heic"},
		{"AVIF", isoMedia("avif", "avif", "mif1"), "image/avif"},
		// The library tells WebM from other Matroska files by the EBML
		// DocType, so the header has one, as real files do.
		{"WebM", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm\x42\x87\x81\x04"), "video/webm"},
		{"MatroskaWithoutDocType", []byte("\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"), "application/octet-stream"},
		// The library checks the ID3v2 header (version, flags, a non-zero
		// synchsafe size) rather than the three letters alone.
		{"MP3WithID3", []byte("ID3\x04\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x02\x00\x00\x00a"), "audio/mpeg"},
		{"ID3WithoutTag", []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), "application/octet-stream"},
		{"MP3Frame", []byte("\xff\xfb\x90\x64\x00\x00\x00\x00"), "audio/mpeg"},
		{"AAC", []byte("\xff\xf1\x50\x80\x02\x1f\xfc"), "audio/aac"},
		{"AMR", []byte("#!AMR\n\x3c\x00"), "audio/amr"},
		{"FLAC", []byte("fLaC\x00\x00\x00\x22"), "audio/flac"},
		{"WAV", []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"), "audio/wav"}, // the library's name (net/http's: audio/wave)
		{"Zip", zipBytes(t, "hello.txt", "b.txt"), "application/zip"},
		{"Docx", zipBytes(t, "[Content_Types].xml", "_rels/.rels", "word/document.xml"), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
		{"Xlsx", zipBytes(t, "[Content_Types].xml", "xl/workbook.xml"), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
		{"Pptx", zipBytes(t, "ppt/presentation.xml"), "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
		{"EPUB", mimetypeZip(t, "application/epub+zip"), "application/epub+zip"},
		{"ODT", mimetypeZip(t, "application/vnd.oasis.opendocument.text"), "application/vnd.oasis.opendocument.text"},
		{"ELFExecutable", elfBytes(2), "application/x-executable"},
		{"ELFShared", elfBytes(3), "application/x-sharedlib"},
		// The library's names for these two (refused by AllowedMime like
		// application/x-msdownload and application/java-vm before).
		{"PE", peBytes(), "application/vnd.microsoft.portable-executable"},
		{"MachO64", append([]byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01"), make([]byte, 24)...), "application/x-mach-binary"},
		{"MachOFat", []byte("\xca\xfe\xba\xbe\x00\x00\x00\x02\x01\x00\x00\x07"), "application/x-mach-binary"},
		{"JavaClass", []byte("\xca\xfe\xba\xbe\x00\x00\x00\x34\x00\x1d"), "application/x-java-applet"},
		{"TextStartingMZ", []byte("MZ is the country code of Mozambique, and this is plain text, long enough to pass sixty-four bytes."), "text/plain; charset=utf-8"},
		{"Text", []byte("hello, world\n"), "text/plain; charset=utf-8"},
		{"HTML", []byte("<!DOCTYPE html><html>"), "text/html; charset=utf-8"},
		{"Binary", []byte("\x00\x01\x02\x03\x04"), "application/octet-stream"},
		{"Empty", nil, "application/octet-stream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := media.Sniff(tc.data); got != tc.want {
				t.Errorf("Sniff = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("OnlyFirst512Bytes", func(t *testing.T) {
		data := append(bytes.Repeat([]byte("a"), 512), "\x00\x01\x02"...)
		if got := media.Sniff(data); got != "text/plain; charset=utf-8" {
			t.Errorf("Sniff = %q", got)
		}
	})
}

// TestPutSniffs checks that Put sniffs the stream's first bytes, also when
// they arrive in small reads.
func TestPutSniffs(t *testing.T) {
	s, _ := MustStore(t)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"PNG", pngBytes(t), "image/png"},
		{"JPEG", jpegBytes(t), "image/jpeg"},
		{"PDF", append([]byte("%PDF-1.4\n"), randomBytes(t, 4096)...), "application/pdf"},
		{"OggOpus", append(oggPage("OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"), randomBytes(t, 4096)...), "audio/ogg; codecs=opus"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := s.Put(t.Context(), &oneByteReader{data: tc.data}, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if b.MimeType != tc.want {
				t.Errorf("MimeType = %q, want %q", b.MimeType, tc.want)
			}
			if b.SHA256 != sha(tc.data) {
				t.Errorf("SHA256 = %s, want %s", b.SHA256, sha(tc.data))
			}
		})
	}
}

// oneByteReader returns its data one byte per Read.
type oneByteReader struct{ data []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	p[0] = r.data[0]
	r.data = r.data[1:]
	return 1, nil
}

func TestKindForMime(t *testing.T) {
	cases := []struct {
		mime, kind string
		ok         bool
	}{
		{"image/jpeg", wabsync.KindImage, true},
		{"image/png", wabsync.KindImage, true},
		{"IMAGE/PNG", wabsync.KindImage, true},
		{"image/webp", wabsync.KindImage, true},
		{"image/gif", wabsync.KindImage, true},
		{"image/svg+xml", wabsync.KindDocument, true},
		{"video/mp4", wabsync.KindVideo, true},
		{"video/3gpp", wabsync.KindVideo, true},
		{"audio/ogg; codecs=opus", wabsync.KindVoice, true},
		{"audio/ogg;codecs=\"opus\"", wabsync.KindVoice, true},
		{"audio/opus", wabsync.KindVoice, true},
		{"audio/ogg", wabsync.KindAudio, true},
		{"audio/mpeg", wabsync.KindAudio, true},
		{"audio/mp4", wabsync.KindAudio, true},
		{"application/pdf", wabsync.KindDocument, true},
		{"application/zip", wabsync.KindDocument, true},
		{"text/plain; charset=utf-8", wabsync.KindDocument, true},
		{"application/octet-stream", wabsync.KindDocument, true},
		{"application/x-msdownload", "", false},
		{"application/x-executable", "", false},
		{"application/x-sharedlib", "", false},
		{"application/x-mach-binary", "", false},
		{"Application/X-MSDownload; foo=bar", "", false},
		{"", "", false},
		{"image", "", false},
		{"not a type", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.mime, func(t *testing.T) {
			kind, ok := media.KindForMime(tc.mime)
			if kind != tc.kind || ok != tc.ok {
				t.Errorf("KindForMime(%q) = %q, %v; want %q, %v", tc.mime, kind, ok, tc.kind, tc.ok)
			}
			if allowed := media.AllowedMime(tc.mime); allowed != tc.ok {
				t.Errorf("AllowedMime(%q) = %v, want %v", tc.mime, allowed, tc.ok)
			}
		})
	}
	t.Run("SniffedExecutablesRefused", func(t *testing.T) {
		for _, data := range [][]byte{elfBytes(2), elfBytes(3), peBytes(), []byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01"), []byte("\xca\xfe\xba\xbe\x00\x00\x00\x34\x00\x1d")} {
			if m := media.Sniff(data); media.AllowedMime(m) {
				t.Errorf("AllowedMime(%q) = true for an executable", m)
			}
		}
	})
}
