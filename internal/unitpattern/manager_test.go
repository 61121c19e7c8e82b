package unitpattern_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/internal/unitpattern"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// TestMatchLikeTheManager asks real 252 and 254 managers which of their
// units each pattern selects (ListUnitsByPatterns, as fdtop and systemctl
// list-units ask) and checks that Match selects exactly the same units.
// The units include names with a backslash, digits and capitals, so that
// escapes, sets, classes and case are all tried against the manager.
func TestMatchLikeTheManager(t *testing.T) {
	units := []string{`pat-a1.service`, `pat-B2.service`, `pat-x\x2dy.service`, `pat-x:y.service`, `pat-plain.service`}
	patterns := []string{
		"pat-*", "*", "pat-a1", "pat-a1.service", "pat-a1.s*", "*.service", "*a1*",
		"pat-??.service", "pat-?.service", "pat-[aB]*", "pat-[!a]*", "pat-[^a]*", "pat-[a-z]*",
		"pat-[[:upper:]]*", "pat-[[:digit:]]*", "pat-[]]*", "pat-[!]]*", "pat-[", "pat-[a",
		`pat-x\x2dy.service`, `*\x2d*`, `pat-x\*`, `pat-x\?2dy.service`, "PAT-*", "pat-a1.service*", "pat-[[:punct:]]*", "pat-x[:]y.service",
	}
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		for _, u := range units {
			if err := sb.WriteUnit(u, "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Systemctl(ctx, append([]string{"start"}, units...)...); err != nil {
			t.Fatal(err)
		}
		conn, err := sandbox.Dial(ctx, sb.Address)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		obj := conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
		// The manager may leave the first message of a private connection
		// unread until more data comes (see dbusclient's kickConn): ping
		// until it answers.
		for deadline := time.Now().Add(10 * time.Second); ; {
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			err := obj.CallWithContext(pctx, "org.freedesktop.DBus.Peer.Ping", 0).Err
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the manager never answered a ping: %v", err)
			}
		}
		list := func(patterns []string) []string {
			t.Helper()
			var rows [][]any
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := obj.CallWithContext(cctx, "org.freedesktop.systemd1.Manager.ListUnitsByPatterns", 0, []string{}, patterns).Store(&rows); err != nil {
				t.Fatalf("ListUnitsByPatterns %q: %v", patterns, err)
			}
			var names []string
			for _, r := range rows {
				names = append(names, r[0].(string))
			}
			sort.Strings(names)
			return names
		}
		all := list(nil)
		for _, u := range units {
			if i := sort.SearchStrings(all, u); i == len(all) || all[i] != u {
				t.Fatalf("the manager does not list %s: %q", u, all)
			}
		}
		for _, p := range patterns {
			want := list([]string{p})
			var got []string
			for _, n := range all {
				if unitpattern.Match(p, n) {
					got = append(got, n)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("pattern %q: Match selects %q, the manager %q", p, got, want)
			}
		}
	})
}
