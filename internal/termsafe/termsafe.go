// Package termsafe makes strings that come from outside fdtop (unit names,
// STATUS= text, comm, cmdline, paths, abstract socket names, journal lines)
// safe to print on a terminal: every control character, escape sequence
// introducer, C1 control, bidi override and invalid UTF-8 byte is shown
// visibly escaped instead of reaching the terminal.
//
// It is the one sanitizer of fdtop: the UI and every text output call it at
// the boundary to the terminal; JSON output keeps exact values instead.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with everything a terminal would interpret escaped
// visibly: C0 controls (including newline and tab) and DEL as \e, \n, \r,
// \t or \xNN; C1 controls, bidi and other invisible format characters as
// \uNNNN (\UNNNNNNNN above U+FFFF); bytes that are not valid UTF-8 as \xNN. Printable text, including non-ASCII letters
// and backslashes (systemd's own \x2d escapes in unit names stay readable,
// as systemctl shows them), is unchanged. String never returns a byte below
// 0x20, DEL, or a C1 control.
func String(s string) string {
	if isClean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x20 || r == 0x7f:
			b.WriteString(controlName(r))
		case unsafeRune(r) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Lines sanitizes a multi-line text (a STATUS= text, a log message) line by
// line: newlines are kept as line breaks, everything else is escaped as by
// String. Use it where layout keeps the line structure.
func Lines(s string) []string {
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = String(strings.TrimSuffix(p, "\r"))
	}
	return parts
}

// Strings applies String to each element of ss, in a new slice.
func Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = String(s)
	}
	return out
}

// isClean reports whether s needs no escaping (the common case, checked
// without allocating).
func isClean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			// Non-ASCII: decide rune by rune.
			for _, r := range s[i:] {
				if r == utf8.RuneError || r < 0x20 || r == 0x7f || unsafeRune(r) {
					return false
				}
			}
			return true
		}
	}
	return true
}

func controlName(r rune) string {
	switch r {
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case 0x1b:
		return `\e`
	}
	return fmt.Sprintf(`\x%02x`, r)
}

// unsafeRune reports runes above ASCII a terminal may act on or that hide or
// reorder text: C1 controls (Cc), every format character (Cf: soft hyphen,
// zero-width characters, bidi marks, embeddings, overrides and isolates,
// the BOM, interlinear annotations, tag characters) and the line and
// paragraph separators (Zl, Zp).
func unsafeRune(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}
