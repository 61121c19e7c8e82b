package ui

import (
	"strings"
	"testing"
)

// TestSortShownInTitle: the sort order is named in the list's title, where
// a narrow list pane (the wide layout at 120 columns) does not cut it.
func TestSortShownInTitle(t *testing.T) {
	m := withSnapshot(newTestModel(newFakeSource(demoSnapshot()), Options{Patterns: []string{"demo-*"}}, 120, 40), demoSnapshot())
	if v := m.View(); strings.Contains(v, "sorted by") {
		t.Fatalf("sorted by name (the default) is announced:\n%s", v)
	}
	m = send(m, keyMsg("o"))
	v := m.View()
	if !strings.Contains(v, "Units · 5 · sorted by connections · matching demo-*") {
		t.Errorf("title does not name the sort:\n%s", v)
	}
}
