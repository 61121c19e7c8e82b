// Package clierr holds what fdtop's engines and its command line share
// about errors: the usage error (exit 2) and the one-line form of an error.
package clierr

import (
	"strings"
)

// UsageError is a command line mistake: fdtop exits 2 on it. Engines
// return it for what a flag named wrong (a --proc that is no procfs, a
// host that is no host name), so the command line can say so.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Usage returns a UsageError saying msg.
func Usage(msg string) error { return UsageError{msg} }

// OneLine is err's message on one line, its line breaks made spaces and
// its ends trimmed, as it came: whoever puts it on a terminal sanitizes it
// there (termsafe), JSON keeps it exact.
func OneLine(err error) string {
	return strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " "))
}
