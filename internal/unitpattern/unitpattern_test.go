package unitpattern

import "testing"

// TestMatch is the semantics of a unit pattern, case by case (the
// manager's fnmatch with FNM_NOESCAPE; TestMatchLikeTheManager checks the
// same cases against real managers).
func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		// Whole names, no implied suffix.
		{"demo-handoff.service", "demo-handoff.service", true},
		{"demo-handoff", "demo-handoff.service", false},
		{"demo-handoff.service", "demo-handoff.socket", false},
		{"journald", "systemd-journald.service", false},
		{"*journald*", "systemd-journald.service", true},
		{"", "demo.service", false},
		// '*' crosses dots; '?' is one character.
		{"demo-*", "demo-handoff.socket", true},
		{"demo-*", "demo-handoff.service", true},
		{"demo-*", "demo-", true},
		{"demo-*", "xdemo-a.service", false},
		{"*.socket", "demo-handoff.socket", true},
		{"*.socket", "demo-handoff.socket.service", false},
		{"*", "a.service", true},
		{"**.service", "a.service", true},
		{"*a*b*c*", "xaybzc.service", true},
		{"*a*b*c", "xaybzc.service", false},
		{"demo-?andoff.service", "demo-handoff.service", true},
		{"demo-?.service", "demo-ab.service", false},
		{"web@*.service", "web@1-127.0.0.1:80-127.0.0.1:5000.service", true},
		// Sets: ranges, negation with '!' or '^', ']' first, classes.
		{"demo-[hp]*", "demo-plain.service", true},
		{"demo-[hp]*", "demo-activated.service", false},
		{"demo-[!h]*", "demo-plain.service", true},
		{"demo-[!h]*", "demo-handoff.service", false},
		{"demo-[^h]*", "demo-handoff.service", false},
		{"demo-[^h]*", "demo-activated.service", true},
		{"svc[0-9].service", "svc7.service", true},
		{"svc[0-9].service", "svcx.service", false},
		{"svc[]x].service", "svc].service", true},
		{"svc[!]x].service", "svc].service", false},
		{"svc[a-].service", "svc-.service", true},
		{"[[:alpha:]]emo-*", "demo-plain.service", true},
		{"[[:digit:]]emo-*", "demo-plain.service", false},
		{"svc[[:digit:][:upper:]].service", "svcQ.service", true},
		{"svc[[:nope:]].service", "svcn.service", false},
		// A '[' that never closes is an ordinary character.
		{"svc[", "svc[", true},
		{"svc[a", "svca", false},
		// Backslash is an ordinary character, never an escape.
		{`dev-disk-by\x2dlabel-x.device`, `dev-disk-by\x2dlabel-x.device`, true},
		{`dev-disk-by\x2dlabel-x.device`, `dev-disk-byx2dlabel-x.device`, false},
		{`*\x2d*`, `systemd-fsck@dev-disk-by\x2duuid-1.service`, true},
		{`\*.service`, `\a.service`, true},
		{`\*.service`, `*.service`, false},
		// Case matters.
		{"Demo-*", "demo-plain.service", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestMatchAny(t *testing.T) {
	tests := []struct {
		patterns []string
		name     string
		want     bool
	}{
		{nil, "a.service", false},
		{[]string{"b*", "a*"}, "a.service", true},
		{[]string{"b*", "c*"}, "a.service", false},
	}
	for _, tt := range tests {
		if got := MatchAny(tt.patterns, tt.name); got != tt.want {
			t.Errorf("MatchAny(%q, %q) = %v, want %v", tt.patterns, tt.name, got, tt.want)
		}
	}
}
