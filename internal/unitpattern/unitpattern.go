// Package unitpattern is fdtop's one matcher of unit patterns: the
// PATTERN arguments of snapshot, watch, the dashboard and doctor, which
// select units by name as systemctl's do.
//
// A pattern is a shell glob matched against the whole unit name exactly as
// the systemd manager matches the patterns of ListUnitsByPatterns (what
// `systemctl list-units PATTERN` sends): fnmatch(3) with FNM_NOESCAPE and
// no other flag. So:
//
//   - '*' matches any run of characters (dots included: "demo-*" matches
//     demo-handoff.socket and demo-handoff.service), '?' any one character;
//   - "[...]" matches one character of a set: ranges "a-z", classes
//     "[:digit:]", negated by a leading '!' or '^'; a ']' first in the set
//     is a member; a '[' with no closing ']' is an ordinary character;
//   - a backslash is an ordinary character (unit names hold them, e.g.
//     dev-disk-by\x2dlabel-x.device), never an escape;
//   - the whole name must match: there is no implied suffix, so "journald"
//     matches no unit (systemd-journald.service is "*journald*" or
//     "systemd-journald.service"). fdtop does not add ".service" to a
//     pattern without one, as `systemctl list-units` does not.
//
// Nothing else in fdtop matches unit patterns: the manager does it for the
// units it lists, and this package everywhere fdtop decides by itself
// (which services to read, which patterns matched nothing, which rows the
// dashboard shows).
package unitpattern

import "unicode/utf8"

// MatchAny reports whether name matches at least one of patterns; no
// patterns match nothing (a caller for which "no patterns" means "every
// unit" says so itself).
func MatchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// Match reports whether the whole of name matches the glob pattern, as
// fnmatch(pattern, name, FNM_NOESCAPE) does. Every pattern is valid.
func Match(pattern, name string) bool {
	// Iterative matching with one backtrack point, the last '*': what it
	// matched grows by one character each time the rest fails.
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(name[n:])
				p, n = p+1, n+w
				continue
			case '[':
				c, w := utf8.DecodeRuneInString(name[n:])
				if ok, end, valid := matchSet(pattern, p, c); valid {
					if ok {
						p, n = end, n+w
						continue
					}
					break // mismatch: backtrack
				}
				if name[n] == '[' { // no closing ']': an ordinary '['
					p, n = p+1, n+1
					continue
				}
			default:
				c, pw := utf8.DecodeRuneInString(pattern[p:])
				r, nw := utf8.DecodeRuneInString(name[n:])
				if c == r {
					p, n = p+pw, n+nw
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		_, w := utf8.DecodeRuneInString(name[starN:])
		starN += w
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// classes are the POSIX character classes fnmatch knows in a set, for
// ASCII (unit names are ASCII).
var classes = map[string]func(rune) bool{
	"alnum":  func(r rune) bool { return isAlpha(r) || isDigit(r) },
	"alpha":  isAlpha,
	"blank":  func(r rune) bool { return r == ' ' || r == '\t' },
	"cntrl":  func(r rune) bool { return r < 0x20 || r == 0x7f },
	"digit":  isDigit,
	"graph":  func(r rune) bool { return r > 0x20 && r < 0x7f },
	"lower":  func(r rune) bool { return r >= 'a' && r <= 'z' },
	"print":  func(r rune) bool { return r >= 0x20 && r < 0x7f },
	"punct":  func(r rune) bool { return r > 0x20 && r < 0x7f && !isAlpha(r) && !isDigit(r) },
	"space":  func(r rune) bool { return r == ' ' || r >= '\t' && r <= '\r' },
	"upper":  func(r rune) bool { return r >= 'A' && r <= 'Z' },
	"xdigit": func(r rune) bool { return isDigit(r) || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' },
}

func isAlpha(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// matchSet matches c against the set that starts at pattern[p] == '['. It
// returns whether c is in it and the index after its ']'; valid is false
// when the set never closes (the '[' is then an ordinary character).
func matchSet(pattern string, p int, c rune) (ok bool, end int, valid bool) {
	i := p + 1
	negate := false
	if i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(pattern) {
		if pattern[i] == ']' && !first {
			return ok != negate, i + 1, true
		}
		first = false
		if pattern[i] == '[' && i+1 < len(pattern) && pattern[i+1] == ':' {
			if j := indexFrom(pattern, i+2, ":]"); j >= 0 {
				if is, known := classes[pattern[i+2:j]]; known {
					ok = ok || is(c)
					i = j + 2
					continue
				}
				// An unknown class makes the whole pattern match nothing
				// in glibc; a set that matches nothing is the nearest.
				i = j + 2
				continue
			}
		}
		lo, w := utf8.DecodeRuneInString(pattern[i:])
		i += w
		hi := lo
		if i+1 < len(pattern) && pattern[i] == '-' && pattern[i+1] != ']' {
			hi, w = utf8.DecodeRuneInString(pattern[i+1:])
			i += 1 + w
		}
		if lo <= c && c <= hi {
			ok = true
		}
	}
	return false, 0, false
}

func indexFrom(s string, from int, sub string) int {
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
