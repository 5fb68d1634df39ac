package safehttp

import "net/netip"

// blockedPrefixes are the ranges no outbound request may reach unless private
// targets are allowed: everything that is not ordinary global unicast.
var blockedPrefixes = mustPrefixes(
	// IPv4.
	"0.0.0.0/8",       // "this network", including the unspecified address
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // carrier-grade NAT (RFC 6598)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, including cloud metadata 169.254.169.254
	"172.16.0.0/12",   // private (RFC 1918)
	"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
	"192.0.2.0/24",    // documentation TEST-NET-1 (RFC 5737)
	"192.88.99.0/24",  // 6to4 relay anycast (deprecated, RFC 7526)
	"192.168.0.0/16",  // private (RFC 1918)
	"198.18.0.0/15",   // benchmarking (RFC 2544)
	"198.51.100.0/24", // documentation TEST-NET-2
	"203.0.113.0/24",  // documentation TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, including broadcast 255.255.255.255
	// IPv6. IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) and 6to4
	// (2002::/16) addresses are judged by the IPv4 address they embed.
	"::/96",          // unspecified, loopback ::1 and deprecated IPv4-compatible addresses
	"64:ff9b:1::/48", // local-use NAT64 (RFC 8215)
	"100::/64",       // discard-only (RFC 6666)
	"2001::/23",      // IETF protocol assignments, including Teredo 2001::/32
	"2001:db8::/32",  // documentation
	"3fff::/20",      // documentation (RFC 9637)
	"5f00::/16",      // segment routing SIDs (RFC 9602)
	"fc00::/7",       // unique local (private)
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// IsBlocked reports whether ip is an address outbound requests must not
// reach: loopback, private (RFC 1918, fc00::/7), carrier-grade NAT
// (100.64.0.0/10), link-local (including the cloud metadata address
// 169.254.169.254), unspecified, "this network" (0.0.0.0/8), multicast,
// broadcast and reserved ranges, documentation and benchmarking ranges, and
// IPv6 transition addresses (IPv4-mapped, NAT64, 6to4) that embed any of
// those. Teredo and other IETF special-purpose IPv6 ranges are blocked whole.
// The invalid (zero) Addr is blocked. A zone (fe80::1%eth0) is ignored.
func IsBlocked(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			return IsBlocked(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(ip):
			return IsBlocked(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	// Belt and braces: the standard library's own classification.
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified()
}
