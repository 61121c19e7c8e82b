package procfs

import (
	"net/netip"
	"testing"
)

// TestAppendInetReqUnknownPeer: a socket whose addresses are unknown (the
// zero AddrPort, or an IPv6 address on an IPv4 lookup) builds a request
// instead of panicking: As4 panics on them, and once did in a live scan.
func TestAppendInetReqUnknownPeer(t *testing.T) {
	for _, s := range []Socket{
		{},
		{Local: netip.MustParseAddrPort("127.0.0.1:80")},
		{Local: netip.MustParseAddrPort("[::1]:80"), Remote: netip.MustParseAddrPort("[::1]:5000")},
		{Local: netip.MustParseAddrPort("[::ffff:127.0.0.1]:80")},
	} {
		for _, fam := range []Family{FamilyInet, FamilyInet6} {
			if b := appendInetReq(nil, fam, ProtoTCP, 0xffffffff, &s); len(b) != 56 {
				t.Errorf("request for %+v (%v): %d bytes, want 56", s, fam, len(b))
			}
		}
	}
}
