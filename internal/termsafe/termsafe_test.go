package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "demo-handoff.service", "demo-handoff.service"},
		{"systemd escapes stay readable", `dev-disk-by\x2duuid.device`, `dev-disk-by\x2duuid.device`},
		{"non-ascii letters kept", "/run/ü.sock", "/run/ü.sock"},
		{"osc title", "\x1b]0;pwned\x07", `\e]0;pwned\x07`},
		{"csi colour", "\x1b[31mRED", `\e[31mRED`},
		{"newline tab cr", "a\nb\tc\rd", `a\nb\tc\rd`},
		{"nul", "@abs\x00name", `@abs\x00name`},
		{"del", "x\x7fy", `x\x7fy`},
		{"c1 csi", "a\u009b31mb", `a\u009b31mb`},
		{"bidi override", "evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"bidi isolate", "a\u2066b", `a\u2066b`},
		{"arabic letter mark", "a\u061cb", `a\u061cb`},
		{"zero width space", "a\u200bb", `a\u200bb`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"tag character", "a\U000e0041b", `a\U000e0041b`},
		{"wide and combining kept", "日本語 é", "日本語 é"},
		{"invalid utf8", "caf\xe9", `caf\xe9`},
		{"truncated utf8", "x\xc3", `x\xc3`},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLines(t *testing.T) {
	got := Lines("one\r\ntwo \x1b[2J\nthree")
	want := []string{"one", `two \e[2J`, "three"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Lines = %q, want %q", got, want)
	}
}

// FuzzString checks the sanitizer's promise on any input: the output is
// valid UTF-8 with no C0 control, no DEL, no ESC and no C1 control, and
// clean input comes back unchanged.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b]0;t\a", "\x9b", "\u009b", "ü\xff", "a\u202eb", "\\x1b", "\U000e0001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := String(in)
		if !utf8.ValidString(out) {
			t.Fatalf("String(%q) = %q: not valid UTF-8", in, out)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || unsafeRune(r) {
				t.Fatalf("String(%q) = %q: contains %U", in, out, r)
			}
		}
		if isClean(in) && out != in {
			t.Fatalf("clean %q changed to %q", in, out)
		}
		if String(out) != out {
			t.Fatalf("String is not idempotent on %q", out)
		}
	})
}
