//go:build oracle

package oracle

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// verdict is what the oracle found a claim to be.
type verdict int

const (
	claimTrue verdict = iota
	// claimUnknown: fdtop said it did not know (an _unknown flag, "not
	// seen"), or the ground truth could not be read.
	claimUnknown
	claimFalse
)

// tally counts claims per field: checked, true, unknown, false.
type tally struct {
	mu     sync.Mutex
	fields map[string]*[3]int
	ops    map[string]int
}

func newTally() *tally { return &tally{fields: map[string]*[3]int{}, ops: map[string]int{}} }

func (t *tally) add(field string, v verdict) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.fields[field]
	if c == nil {
		c = &[3]int{}
		t.fields[field] = c
	}
	c[v]++
}

func (t *tally) op(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ops[name]++
}

func (t *tally) merge(o *tally) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for f, c := range o.fields {
		for v, n := range c {
			for range n {
				t.add(f, verdict(v))
			}
		}
	}
	for op, n := range o.ops {
		t.mu.Lock()
		t.ops[op] += n
		t.mu.Unlock()
	}
}

// String is the table: one line per field.
func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.fields))
	for f := range t.fields {
		names = append(names, f)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%-40s %8s %8s %8s %8s\n", "field", "checked", "true", "unknown", "false")
	var sum [3]int
	for _, f := range names {
		c := t.fields[f]
		fmt.Fprintf(&b, "%-40s %8d %8d %8d %8d\n", f, c[0]+c[1]+c[2], c[0], c[1], c[2])
		for i := range sum {
			sum[i] += c[i]
		}
	}
	fmt.Fprintf(&b, "%-40s %8d %8d %8d %8d\n", "total", sum[0]+sum[1]+sum[2], sum[0], sum[1], sum[2])
	ops := make([]string, 0, len(t.ops))
	total := 0
	for op, n := range t.ops {
		ops = append(ops, fmt.Sprintf("%s %d", op, n))
		total += n
	}
	sort.Strings(ops)
	fmt.Fprintf(&b, "operations: %d (%s)\n", total, strings.Join(ops, ", "))
	return b.String()
}
