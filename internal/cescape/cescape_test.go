package cescape

import (
	"errors"
	"testing"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "/run/x.sock", "/run/x.sock"},
		{"utf-8 as octal bytes", "/run/ü.sock", `/run/\303\274.sock`},
		{"backslash", `back\slash`, `back\\slash`},
		{"quotes", `q"u'o te`, `q\"u\'o te`},
		{"named controls", "\a\b\f\n\r\t\v", `\a\b\f\n\r\t\v`},
		{"esc and del", "\x1b[31m\x7f", `\033[31m\177`},
		{"nul", "a\x00b", `a\000b`},
		{"not utf-8", "lat\xe9", `lat\351`},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "/run/x.sock", "/run/x.sock"},
		{"octal utf-8", `/run/\303\274.sock`, "/run/ü.sock"},
		{"backslash", `back\\slash`, `back\slash`},
		{"quotes", `q\"u\'o te`, `q"u'o te`},
		{"named", `\a\b\f\n\r\t\v\s`, "\a\b\f\n\r\t\v "},
		{"hex either case", `\x1b\x1B\xff`, "\x1b\x1b\xff"},
		{"octal max", `\377`, "\xff"},
		{"nul allowed", `a\000b\x00c`, "a\x00b\x00c"},
		{"u16", `\u00fc`, "ü"},
		{"u32", `\U0001F600`, "😀"},
		{"utf-8 kept", "ü", "ü"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unescape(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("Unescape(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestUnescapeErrors(t *testing.T) {
	for _, in := range []string{`\`, `a\`, `\q`, `\x`, `\x4`, `\x4g`, `\8`, `\12`, `\400`, `\u12`, `\ud800`, `\U00110000`, `\Uffffffff`} {
		t.Run(in, func(t *testing.T) {
			if got, err := Unescape(in); !errors.Is(err, ErrSyntax) {
				t.Errorf("Unescape(%q) = %q, %v; want an ErrSyntax error", in, got, err)
			}
		})
	}
}

// FuzzUnescape checks the decoder against the encoder that mimics
// systemd's cescape(): any bytes survive Escape then Unescape; Escape's
// output is printable ASCII; whatever Unescape accepts re-escapes to a
// string that decodes to the same bytes.
func FuzzUnescape(f *testing.F) {
	for _, s := range []string{"", "/run/ü.sock", `\303\274`, `back\\slash`, "@a\x00b", `\x00\u00fc\U0001F600\s`, "\xff\xfe", `\`, `\400`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i := 0; i < len(e); i++ {
			if e[i] < 0x20 || e[i] >= 0x7f {
				t.Fatalf("Escape(%q) = %q: byte %#x is not printable ASCII", s, e, e[i])
			}
		}
		if d, err := Unescape(e); err != nil || d != s {
			t.Fatalf("Unescape(Escape(%q)) = %q, %v", s, d, err)
		}
		d, err := Unescape(s)
		if err != nil {
			return
		}
		if d2, err := Unescape(Escape(d)); err != nil || d2 != d {
			t.Fatalf("%q decodes to %q, whose escape decodes to %q, %v", s, d, d2, err)
		}
	})
}
