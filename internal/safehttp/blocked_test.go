package safehttp_test

import (
	"net/netip"
	"testing"

	"github.com/wabsync/wabsync/internal/safehttp"
)

func TestIsBlocked(t *testing.T) {
	blocked := []string{
		"127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1",
		"0.0.0.0", "0.1.2.3", "::", "255.255.255.255",
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"::ffff:10.1.2.3", "::ffff:192.168.0.1",
		"169.254.169.254", "::ffff:169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0",
		"fd00::1", "fc00::1", "fdff:ffff::1",
		"100.64.0.1", "100.127.255.255",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::2", "240.0.0.1",
		"192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "198.19.255.255",
		"2001:db8::1", "3fff::1", "100::1", "fec0::1",
		"64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
		"64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
		"64:ff9b::a00:1",     // NAT64 of 10.0.0.1
		"64:ff9b:1::1",       // local-use NAT64
		"2002:7f00:1::1",     // 6to4 of 127.0.0.1
		"2002:a9fe:a9fe::",   // 6to4 of 169.254.169.254
		"::127.0.0.1",        // IPv4-compatible
		"::8.8.8.8",          // IPv4-compatible, deprecated whatever it embeds
		"2001::1",            // Teredo
	}
	allowed := []string{
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "11.0.0.1",
		"172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
		"169.253.255.255", "169.255.0.1", "192.167.255.255", "223.255.255.255",
		"::ffff:8.8.8.8",
		"2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1",
		"64:ff9b::808:808", // NAT64 of 8.8.8.8
		"2002:808:808::1",  // 6to4 of 8.8.8.8
	}
	for _, s := range blocked {
		t.Run("Blocked/"+s, func(t *testing.T) {
			if !safehttp.IsBlocked(netip.MustParseAddr(s)) {
				t.Errorf("IsBlocked(%s) = false, want true", s)
			}
		})
	}
	for _, s := range allowed {
		t.Run("Allowed/"+s, func(t *testing.T) {
			if safehttp.IsBlocked(netip.MustParseAddr(s)) {
				t.Errorf("IsBlocked(%s) = true, want false", s)
			}
		})
	}
	t.Run("InvalidAddr", func(t *testing.T) {
		if !safehttp.IsBlocked(netip.Addr{}) {
			t.Error("IsBlocked(zero Addr) = false, want true")
		}
	})
}
