// Package importrules holds only a test: the rules on which of fdtop's
// packages may import which (see docs/architecture.md), checked with
// go list on every build of the tests.
package importrules
