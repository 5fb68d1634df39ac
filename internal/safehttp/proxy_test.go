package safehttp_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/wabsync/wabsync/internal/safehttp"
)

// The proxy dialer refuses a loopback address without connecting to it,
// and connects when private addresses are allowed.
func TestDialerRefusesPrivate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	ctx := context.Background()
	for _, addr := range []string{ln.Addr().String(), "localhost:" + portOf(ln), "169.254.169.254:80", "[::1]:" + portOf(ln)} {
		c, err := safehttp.NewDialer(false, 0).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			t.Fatalf("dialled %s", addr)
		}
		if !errors.Is(err, safehttp.ErrBlockedAddress) {
			t.Errorf("%s: %v, want ErrBlockedAddress", addr, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached the loopback listener", n)
	}
	c, err := safehttp.NewDialer(true, 0).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
	c.Close()
}

func portOf(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}
