package fleet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/ui"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in               string
		user, host, port string
		err              string
	}{
		{"web1", "", "web1", "", ""},
		{"deploy@web1:2222", "deploy", "web1", "2222", ""},
		{"127.0.0.2:40022", "", "127.0.0.2", "40022", ""},
		{"[::1]:22", "", "::1", "22", ""},
		{"root@[::1]", "root", "::1", "", ""},
		{"::1", "", "::1", "", ""},
		{"web1:0", "", "", "", "bad port"},
		{"web1:http", "", "", "", "bad port"},
		{"@web1", "", "", "", "empty user"},
		{"-oProxyCommand=x", "", "", "", "not a host name"},
		{"user@", "", "", "", "empty host"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if _, ok := err.(clierr.UsageError); !ok {
					t.Fatalf("err %T, want a usage error (exit 2)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.User != tc.user || got.Host != tc.host || got.Port != tc.port || got.Spec != tc.in {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{"ssh", []string{"ssh"}, false},
		{"ssh -F ./fleet.conf", []string{"ssh", "-F", "./fleet.conf"}, false},
		{`ssh -o 'ProxyJump bastion' -F "my dir/cfg"`, []string{"ssh", "-o", "ProxyJump bastion", "-F", "my dir/cfg"}, false},
		{`ssh -F my\ cfg ''`, []string{"ssh", "-F", "my cfg", ""}, false},
		{`ssh 'open`, nil, true},
	}
	for _, tc := range tests {
		got, err := splitWords(tc.in)
		if (err != nil) != tc.err || (!tc.err && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, s := range []string{"plain", "it's", "a b", "", "$HOME", "--address=unix:path=/x"} {
		got, err := splitWords(shellQuote(s))
		if err != nil || len(got) != 1 || got[0] != s {
			t.Errorf("shellQuote(%q) = %s, splits back to %q", s, shellQuote(s), got)
		}
	}
}

// TestBudget: the default budget is listener kept, nothing refused,
// nothing dropped; --max-* loosen it.
func TestBudget(t *testing.T) {
	kept := inspect.Handoff{ListenersKept: 1, ConnectionsPreserved: 4}
	tests := []struct {
		name   string
		b      Budget
		result string
		h      inspect.Handoff
		ok     bool
		why    string
	}{
		{"handoff", Budget{}, "done", kept, true, ""},
		{"dropped", Budget{}, "done", inspect.Handoff{ListenersKept: 1, ConnectionsDropped: 2}, false, "2 connection(s) dropped (budget 0)"},
		{"dropped within budget", Budget{MaxDropped: 2}, "done", inspect.Handoff{ListenersKept: 1, ConnectionsDropped: 2}, true, ""},
		{"replaced", Budget{}, "done", inspect.Handoff{ListenersReplaced: 1}, false, "listener(s) replaced"},
		{"replaced, refusals allowed but unmeasured", Budget{MaxRefused: 5}, "done", inspect.Handoff{ListenersReplaced: 1}, false, "not measured"},
		{"replaced, measured within budget", Budget{MaxRefused: 5}, "done", inspect.Handoff{ListenersReplaced: 1, Probe: &inspect.ProbeResult{Attempts: 50, Refused: 3}}, true, ""},
		{"refused by probe", Budget{}, "done", inspect.Handoff{ListenersKept: 1, Probe: &inspect.ProbeResult{Refused: 1}}, false, "1 refused (budget 0)"},
		{"no listener", Budget{}, "done", inspect.Handoff{}, false, "no listener seen"},
		{"job failed", Budget{}, "failed", kept, false, "job failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := tc.b.check(tc.result, tc.h)
			if ok != tc.ok || !strings.Contains(why, tc.why) {
				t.Fatalf("check = %v, %q; want %v, %q", ok, why, tc.ok, tc.why)
			}
		})
	}
}

func TestFleetTargets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hosts")
	if err := os.WriteFile(file, []byte("# the fleet\nweb2  # second\n\ndeploy@web3:2222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dup := filepath.Join(dir, "dup")
	if err := os.WriteFile(dup, []byte("web1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		hosts []string
		file  string
		want  []string
		err   string
	}{
		{"flag and file", []string{"web1"}, file, []string{"web1", "web2", "deploy@web3:2222"}, ""},
		{"commas", []string{"a,b", "c"}, "", []string{"a", "b", "c"}, ""},
		{"twice", []string{"web1"}, dup, nil, "named twice"},
		{"missing file", nil, filepath.Join(dir, "nope"), nil, "--hosts-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Targets(tc.hosts, tc.file)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var specs []string
			for _, g := range got {
				specs = append(specs, g.Spec)
			}
			if !reflect.DeepEqual(specs, tc.want) {
				t.Fatalf("targets %q, want %q", specs, tc.want)
			}
		})
	}
}

// TestJudgeStart: which failures to reach a host at start are retried.
func TestJudgeStart(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		retry bool
		has   string
	}{
		{"connection refused", errors.New("ssh: connect to host 127.0.0.2 port 22: Connection refused"), true, "Connection refused"},
		{"no route", errors.New("ssh: connect to host web1 port 22: No route to host"), true, "No route"},
		{"name not resolving yet", errors.New("ssh: Could not resolve hostname web9: Name or service not known"), true, "resolve"},
		{"no fdtop there", &missingError{}, true, "--push"},
		{"manager not answering", errors.New("agent: EOF: fdtop agent: no systemd manager answers"), true, "no systemd manager"},
		{"host key", errors.New("No ED25519 host key is known for [127.0.0.2]:2222 and you have requested strict checking.; Host key verification failed."), true, "never accepts a host key"},
		{"authentication", errors.New("x@127.0.0.2: Permission denied (publickey)."), false, "not retried"},
		{"sudo", fmt.Errorf("--push: %w", &lastingError{err: errors.New("--sudo: sudo -n refused"), why: "each try would be refused"}), false, "not retried: each try would be refused"},
		{"a remote file permission is not a login refusal", errors.New("sh: 1: /root/.cache/fdtop/fdtop-1: Permission denied"), true, "Permission denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, retry := judgeStart(tc.err)
			if retry != tc.retry || !strings.Contains(msg, tc.has) || !strings.HasPrefix(msg, clierr.OneLine(tc.err)) {
				t.Fatalf("judgeStart = %q, %v; want retry %v and %q after the error's own words", msg, retry, tc.retry, tc.has)
			}
		})
	}
}

// TestFleetMemberTried: the states of a fleet host not reached at start,
// try after try.
func TestFleetMemberTried(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	refused := errors.New("ssh: connect to host h port 22: Connection refused")
	denied := errors.New("h: Permission denied (publickey).")
	type try struct {
		err   error
		next  time.Time
		state ui.HostState
		msg   string
		retry time.Time
	}
	tests := []struct {
		name  string
		tries []try
	}{
		{"reached at start", []try{{nil, t0, ui.HostConnecting, "", time.Time{}}}},
		{"refused, then reached", []try{
			{refused, t0.Add(time.Second), ui.HostUnreachable, refused.Error(), t0.Add(time.Second)},
			{refused, t0.Add(3 * time.Second), ui.HostUnreachable, refused.Error(), t0.Add(3 * time.Second)},
			{nil, time.Time{}, ui.HostConnecting, "", time.Time{}},
		}},
		{"refused, then the login refused: not retried", []try{
			{refused, t0.Add(time.Second), ui.HostUnreachable, refused.Error(), t0.Add(time.Second)},
			{denied, time.Time{}, ui.HostFailed, denied.Error() + " — not retried", time.Time{}},
		}},
		{"login refused at start", []try{{denied, t0.Add(time.Second), ui.HostFailed, "not retried", time.Time{}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &fleetMember{}
			for i, tr := range tc.tries {
				m.tried(tr.err, tr.next)
				if m.state != tr.state || !strings.Contains(m.message, tr.msg) || (tr.msg == "" && m.message != "") || !m.retry.Equal(tr.retry) {
					t.Fatalf("try %d (%v): state %s, message %q, retry %v; want %s, %q, %v", i, tr.err, m.state, m.message, m.retry, tr.state, tr.msg, tr.retry)
				}
			}
		})
	}
}
