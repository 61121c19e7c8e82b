package ui

import (
	"errors"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
)

// runes is what bubbletea v1 sends for keys typed faster than it reads:
// one KeyMsg holding every rune of the read.
func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func rowUnits(m Model) []string {
	units := make([]string, len(m.list.rows))
	for i, r := range m.list.rows {
		units[i] = r.unit
	}
	return units
}

func TestRunOfRunesIsOneKeyEach(t *testing.T) {
	tests := []struct {
		name         string
		msgs         []tea.Msg
		wantSelected string
		wantFilter   string
		wantConfirm  bool
	}{
		{name: "moves", msgs: []tea.Msg{runes("jjj")}, wantSelected: "demo-handoff.service"},
		{name: "moves and back", msgs: []tea.Msg{runes("jjjk")}, wantSelected: "demo-handoff.socket"},
		{name: "filter typed in one read", msgs: []tea.Msg{runes("/hand"), keyMsg("enter"), runes("j")},
			wantSelected: "demo-handoff.service", wantFilter: "hand"},
		{name: "filter selects the row typed, never its socket shown for context", msgs: []tea.Msg{runes("/handoff.service"), keyMsg("enter")},
			wantSelected: "demo-handoff.service", wantFilter: "handoff.service"},
		{name: "paste stays whole", msgs: []tea.Msg{keyMsg("/"), tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("jj"), Paste: true}},
			wantSelected: "", wantFilter: "jj"}, // no unit matches "jj"
		{name: "restart typed with its confirmation key", msgs: []tea.Msg{runes("jjjr")},
			wantSelected: "demo-handoff.service", wantConfirm: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := withSnapshot(newTestModel(newFakeSource(demoSnapshot()), Options{}, 120, 40), demoSnapshot())
			m = send(m, tt.msgs...)
			if got := m.list.Selected(); got != tt.wantSelected {
				t.Errorf("selected %q, want %q (rows %v)", got, tt.wantSelected, rowUnits(m))
			}
			if got := m.list.filter.Value(); got != tt.wantFilter {
				t.Errorf("filter %q, want %q", got, tt.wantFilter)
			}
			if m.confirming != tt.wantConfirm {
				t.Errorf("confirming = %v, want %v", m.confirming, tt.wantConfirm)
			}
		})
	}
}

func TestKeysBeforeFirstSnapshotAreReplayed(t *testing.T) {
	m := newTestModel(newFakeSource(demoSnapshot()), Options{}, 120, 40)
	m = send(m, keyMsg("j"), runes("jj"), keyMsg("e"), keyMsg("r"))
	if m.confirming || m.explain {
		t.Fatalf("keys acted on the empty list: confirming=%v explain=%v", m.confirming, m.explain)
	}
	m = withSnapshot(m, demoSnapshot())
	if got := m.list.Selected(); got != "demo-handoff.service" {
		t.Errorf("after the first snapshot: selected %q, want demo-handoff.service", got)
	}
	if !m.explain || !m.confirming || m.confirm.unit != "demo-handoff.service" {
		t.Errorf("held keys not replayed in order: explain=%v confirming=%v unit=%q", m.explain, m.confirming, m.confirm.unit)
	}
	if len(m.typeahead) != 0 {
		t.Errorf("typeahead not emptied: %v", m.typeahead)
	}
}

func TestKeysBeforeFirstSnapshotNotHeld(t *testing.T) {
	m := newTestModel(newFakeSource(demoSnapshot()), Options{}, 120, 40)
	// Keys that need no rows act at once.
	m = send(m, keyMsg("e"), keyMsg("/"), runes("jq"))
	if !m.explain || m.list.filter.Value() != "jq" || len(m.typeahead) != 0 {
		t.Errorf("explain=%v filter=%q held=%d, want explain on, filter \"jq\", nothing held", m.explain, m.list.filter.Value(), len(m.typeahead))
	}
	// Quit is never held, even behind a held key.
	m = newTestModel(newFakeSource(demoSnapshot()), Options{}, 120, 40)
	nm, cmd := m.Update(runes("jq"))
	if cmd == nil {
		t.Fatal("q typed after a held key did not quit")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		if batch, ok := cmd().(tea.BatchMsg); !ok || !batchQuits(batch) {
			t.Errorf("q typed after a held key did not quit: %T", cmd())
		}
	}
	if held := len(nm.(Model).typeahead); held != 1 {
		t.Errorf("held %d keys, want 1 (the j)", held)
	}
}

func batchQuits(b tea.BatchMsg) bool {
	for _, c := range b {
		if c == nil {
			continue
		}
		if _, ok := c().(tea.QuitMsg); ok {
			return true
		}
	}
	return false
}

func TestKeysHeldUntilScanError(t *testing.T) {
	m := newTestModel(newFakeSource(nil), Options{}, 120, 40)
	m = send(m, keyMsg("j"), keyMsg("r"))
	m = send(m, snapshotMsg{err: errors.New("scan failed")})
	if len(m.typeahead) != 0 {
		t.Errorf("keys still held after a failed scan: %v", m.typeahead)
	}
	if !strings.Contains(m.status.text, "no unit selected") {
		t.Errorf("status %q: the held r should have been handled (no unit selected)", m.status.text)
	}
	// Later keys act at once.
	m = send(m, keyMsg("e"))
	if !m.explain || len(m.typeahead) != 0 {
		t.Errorf("after the error: explain=%v held=%d", m.explain, len(m.typeahead))
	}
}

func TestReplayRunOfSteps(t *testing.T) {
	evs, err := ParseRecording(strings.NewReader(recording))
	if err != nil {
		t.Fatal(err)
	}
	m := NewReplayModel(evs, ReplayOptions{Stepped: true})
	nm, _ := m.Update(replayTickMsg{gen: 0})
	nm, _ = nm.Update(runes("nnn"))
	if got := nm.(ReplayModel).Shown(); got != 4 {
		t.Errorf("after \"nnn\" in one read: %d events shown, want 4", got)
	}
}
