// Package wabsync holds WabSync's domain: the types every other package shares
// (sessions, messages, events, webhooks), the Engine interface that hides
// WhatsApp behind it, and the one Error type the HTTP layer maps to the API's
// error envelope. It imports nothing of the project.
package wabsync

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Version is the build's version, set by the linker (-X) for releases.
var Version = "dev"

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

var idMu sync.Mutex
var idLastMS int64
var idLastRand [10]byte

// NewID returns a new identifier: prefix, an underscore, then 26 characters
// that sort by creation time (48 bits of milliseconds, 80 random bits, made
// monotonic within one millisecond in this process). Sorting ids as strings
// sorts them by creation, which cursor pagination relies on.
func NewID(prefix string) string {
	idMu.Lock()
	ms := time.Now().UnixMilli()
	var r [10]byte
	if ms <= idLastMS {
		ms = idLastMS
		r = idLastRand
		// Increment the 80-bit random part; overflow is astronomically unlikely.
		for i := len(r) - 1; i >= 0; i-- {
			r[i]++
			if r[i] != 0 {
				break
			}
		}
	} else {
		_, _ = rand.Read(r[:])
	}
	idLastMS, idLastRand = ms, r
	idMu.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	copy(b[6:], r[:])
	// 128 bits → 26 base32 characters (the first carries 3 bits).
	out := make([]byte, 0, len(prefix)+27)
	out = append(out, prefix...)
	out = append(out, '_')
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var enc [26]byte
	for i := 25; i >= 0; i-- {
		enc[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	out = append(out, enc[:]...)
	return string(out)
}

var waMu sync.Mutex
var waLastMS int64
var waSeq uint32

// NewWAID returns a WhatsApp message id in the form WhatsApp clients use
// ("3EB0" and 18 upper-case hex digits): 40 bits of the millisecond, then 32
// bits that start at a random value each millisecond and count up within it
// in this process. Ids made one after another sort together, so storing
// them appends to the message index instead of touching a random page of it
// per message; two processes collide only when they pick the same random
// start in the same millisecond, and the store refuses a duplicate.
func NewWAID() string {
	waMu.Lock()
	ms := time.Now().UnixMilli()
	if ms <= waLastMS {
		ms = waLastMS
		waSeq++
		if waSeq == 0 { // 2^32 ids in one millisecond: borrow the next one
			ms++
		}
	} else {
		var r [4]byte
		_, _ = rand.Read(r[:])
		waSeq = binary.BigEndian.Uint32(r[:]) >> 1 // headroom to count up
	}
	waLastMS = ms
	seq := waSeq
	waMu.Unlock()
	const hexdig = "0123456789ABCDEF"
	var b [22]byte
	copy(b[:], "3EB0")
	t := uint64(ms) & (1<<40 - 1) // wraps every 34 years: only locality depends on it
	for i := 13; i >= 4; i-- {
		b[i] = hexdig[t&15]
		t >>= 4
	}
	for i := 21; i >= 14; i-- {
		b[i] = hexdig[seq&15]
		seq >>= 4
	}
	return string(b[:])
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// RandomBase62 returns n characters drawn uniformly from [0-9A-Za-z] by a
// cryptographic source. Tokens and secrets are made of it.
func RandomBase62(n int) string {
	out := make([]byte, n)
	buf := make([]byte, n+n/2+8)
	i := 0
	for i < n {
		_, _ = rand.Read(buf)
		for _, c := range buf {
			if c >= 248 { // 248 = 4*62: reject to avoid modulo bias
				continue
			}
			out[i] = base62[c%62]
			i++
			if i == n {
				break
			}
		}
	}
	return string(out)
}

// Clock tells the time. Services take one so that retries, leases and expiry
// can be tested without sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }
