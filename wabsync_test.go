package wabsync

import (
	"regexp"
	"testing"
)

func TestNewWAIDFormUniqueAndOrdered(t *testing.T) {
	form := regexp.MustCompile(`^3EB0[0-9A-F]{18}$`)
	seen := make(map[string]bool)
	prev := ""
	for i := 0; i < 100000; i++ {
		id := NewWAID()
		if !form.MatchString(id) {
			t.Fatalf("%q is not in WhatsApp's form", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("%q made after %q sorts before it", id, prev)
		}
		prev = id
	}
}
