package inspect

import (
	"net/netip"
	"testing"
)

// FuzzProbeTarget: any Listen= text gives a loopback target or an error,
// never a panic and never an address off this machine.
func FuzzProbeTarget(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::]:443", "8080", "0.0.0.0:1", "10.0.0.1:80", "/run/x.sock", "@abs\x00tract", "", "[::ffff:127.0.0.1]:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, listen string) {
		target, err := ProbeTarget(listen)
		if err != nil {
			return
		}
		ap, perr := netip.ParseAddrPort(target)
		if perr != nil {
			t.Fatalf("ProbeTarget(%q) = %q: not an address: %v", listen, target, perr)
		}
		if !ap.Addr().Unmap().IsLoopback() {
			t.Fatalf("ProbeTarget(%q) = %q: not loopback", listen, target)
		}
	})
}
