// Package cescape reads and writes systemd's C escaping (its cescape() and
// cunescape() functions), the form in which systemd prints unix socket
// paths and abstract names, e.g. in a socket unit's Listen property:
// "/run/\303\274.sock" is the path /run/ü.sock.
package cescape

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrSyntax is wrapped by Unescape's errors.
var ErrSyntax = errors.New("invalid C escape")

// Escape escapes s as systemd's cescape() does: \a \b \f \n \r \t \v \\ \"
// and \' by name, every other byte below 0x20 or from 0x7f up (so every
// byte of a non-ASCII character) as three octal digits, the rest as it is.
// The result is printable ASCII.
func Escape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if e, ok := named[c]; ok {
			b.WriteByte('\\')
			b.WriteByte(e)
			continue
		}
		if c < ' ' || c >= 0x7f {
			b.WriteByte('\\')
			b.WriteByte('0' + c>>6)
			b.WriteByte('0' + c>>3&7)
			b.WriteByte('0' + c&7)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// named are the bytes cescape() writes as a backslash and a letter.
var named = map[byte]byte{'\a': 'a', '\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't', '\v': 'v', '\\': '\\', '"': '"', '\'': '\''}

// unnamed is named the other way round, plus \s (a space), which
// cunescape() reads but cescape() never writes.
var unnamed = map[byte]byte{'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v', '\\': '\\', '"': '"', '\'': '\'', 's': ' '}

// Unescape returns the bytes s stands for, reading every escape systemd's
// cunescape() reads: the named ones of Escape and \s (space), \xNN and
// \NNN (octal, at most \377) as one byte each, \uNNNN and \UNNNNNNNN as
// the character's UTF-8 bytes. NUL bytes are allowed (an abstract socket
// name may hold them). Unlike systemd's relaxed mode, an unknown or cut
// escape is an error: the result would not be the bytes systemd means.
func Unescape(s string) (string, error) {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for i < len(s) {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", fmt.Errorf("%w: trailing backslash in %q", ErrSyntax, s)
		}
		e := s[i+1]
		if v, ok := unnamed[e]; ok {
			b = append(b, v)
			i += 2
			continue
		}
		switch {
		case e == 'x':
			v, ok := digits(s, i+2, 2, 16)
			if !ok {
				return "", fmt.Errorf("%w: bad \\x escape at byte %d of %q", ErrSyntax, i, s)
			}
			b = append(b, byte(v))
			i += 4
		case e >= '0' && e <= '7':
			v, ok := digits(s, i+1, 3, 8)
			if !ok || v > 0xff {
				return "", fmt.Errorf("%w: bad octal escape at byte %d of %q", ErrSyntax, i, s)
			}
			b = append(b, byte(v))
			i += 4
		case e == 'u' || e == 'U':
			n := 4
			if e == 'U' {
				n = 8
			}
			v, ok := digits(s, i+2, n, 16)
			if !ok || v > utf8.MaxRune || !utf8.ValidRune(rune(v)) {
				return "", fmt.Errorf("%w: bad \\%c escape at byte %d of %q", ErrSyntax, e, i, s)
			}
			b = utf8.AppendRune(b, rune(v))
			i += 2 + n
		default:
			return "", fmt.Errorf("%w: unknown escape \\%c at byte %d of %q", ErrSyntax, e, i, s)
		}
	}
	return string(b), nil
}

// digits reads n digits of base from s at i.
func digits(s string, i, n int, base uint32) (uint32, bool) {
	if i+n > len(s) {
		return 0, false
	}
	var v uint32
	for _, c := range []byte(s[i : i+n]) {
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint32(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint32(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
	}
	return v, true
}
