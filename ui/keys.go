package ui

import (
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// GlobalKeyMap are the keys that work whatever pane has the focus.
type GlobalKeyMap struct {
	// Quit, Help, NextPane, PrevPane, Explain (annotate the detail pane),
	// Probe (gap meter on/off) and Refresh (rescan the host).
	Quit, Help, NextPane, PrevPane, Explain, Probe, Refresh key.Binding
	// Actions on the selected unit; all disabled in read-only mode.
	Restart, Stop, Start, Reload, TryRestart key.Binding
	// Fix runs the doctor's fix of a socket that hit its trigger limit.
	Fix key.Binding
	// Log opens the full-height log view of the selected units.
	Log key.Binding
	// Rollout rolls the selected unit out across a fleet's hosts, gated by
	// the verdict; enabled only on a fleet that can (and not read-only).
	Rollout key.Binding
}

// DefaultGlobalKeyMap returns the global keys.
func DefaultGlobalKeyMap() GlobalKeyMap {
	return GlobalKeyMap{
		Quit:       key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Help:       key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		NextPane:   key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next pane")),
		PrevPane:   key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous pane")),
		Explain:    key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "explain")),
		Probe:      key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "gap meter on/off")),
		Refresh:    key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "rescan host")),
		Restart:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restart")),
		Stop:       key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "stop")),
		Start:      key.NewBinding(key.WithKeys("S"), key.WithHelp("S", "start")),
		Reload:     key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "reload")),
		TryRestart: key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "try-restart")),
		Log:        key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "log (full view)")),
		Fix:        key.NewBinding(key.WithKeys("F"), key.WithHelp("F", "fix a trigger limit (reset-failed, start)")),
		Rollout:    key.NewBinding(key.WithKeys("O"), key.WithHelp("O", "rollout"), key.WithDisabled()),
	}
}

// SetReadOnly disables (or enables) every action key.
func (k *GlobalKeyMap) SetReadOnly(ro bool) {
	for _, b := range []*key.Binding{&k.Restart, &k.Stop, &k.Start, &k.Reload, &k.TryRestart, &k.Fix} {
		b.SetEnabled(!ro)
	}
	if ro {
		k.Rollout.SetEnabled(false)
	}
}

// actionFor returns the action bound to msg, if any (disabled keys never
// match).
func (k GlobalKeyMap) actionFor(msg tea.KeyMsg) (Action, bool) {
	switch {
	case key.Matches(msg, k.Restart):
		return ActionRestart, true
	case key.Matches(msg, k.Stop):
		return ActionStop, true
	case key.Matches(msg, k.Start):
		return ActionStart, true
	case key.Matches(msg, k.Reload):
		return ActionReload, true
	case key.Matches(msg, k.TryRestart):
		return ActionTryRestart, true
	case key.Matches(msg, k.Fix):
		return ActionFix, true
	}
	return "", false
}

// ShortHelp implements help.KeyMap.
func (k GlobalKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Restart, k.Stop, k.Rollout, k.Probe, k.Explain, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap.
func (k GlobalKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Restart, k.Stop, k.Start, k.Reload, k.TryRestart, k.Fix, k.Rollout},
		{k.Probe, k.Explain, k.Log, k.Refresh},
		{k.NextPane, k.PrevPane, k.Help, k.Quit},
	}
}

// ScrollKeyMap are the movement keys shared by the panes' key maps.
type ScrollKeyMap struct {
	// Up, Down, PageUp, PageDown, Top and Bottom move by a line, a page or
	// to an end.
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
}

// DefaultScrollKeyMap returns arrow, page and vim movement keys.
func DefaultScrollKeyMap() ScrollKeyMap {
	return ScrollKeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b", "ctrl+u"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f", "ctrl+d"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g", "top")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G", "bottom")),
	}
}

// ListKeyMap are the keys of the unit list.
type ListKeyMap struct {
	ScrollKeyMap
	// Open focuses the detail pane, Filter starts the filter input,
	// ClearFilter clears it, Sort cycles the order.
	Open, Filter, ClearFilter, Sort key.Binding
}

// DefaultListKeyMap returns the unit list's keys.
func DefaultListKeyMap() ListKeyMap {
	return ListKeyMap{
		ScrollKeyMap: DefaultScrollKeyMap(),
		Open:         key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "detail")),
		Filter:       key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		ClearFilter:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		Sort:         key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "sort")),
	}
}

// ShortHelp implements help.KeyMap.
func (k ListKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Open, k.Filter, k.Sort}
}

// FullHelp implements help.KeyMap.
func (k ListKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Open, k.Filter, k.ClearFilter, k.Sort},
	}
}

// FilterKeyMap are the keys while typing a filter.
type FilterKeyMap struct {
	// Apply keeps the filter and leaves the input; Cancel clears it.
	Apply, Cancel key.Binding
}

// DefaultFilterKeyMap returns the filter input's keys.
func DefaultFilterKeyMap() FilterKeyMap {
	return FilterKeyMap{
		Apply:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply filter")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
	}
}

// ShortHelp implements help.KeyMap.
func (k FilterKeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Apply, k.Cancel} }

// FullHelp implements help.KeyMap.
func (k FilterKeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{{k.Apply, k.Cancel}} }

// DetailKeyMap are the keys of the detail pane.
type DetailKeyMap struct {
	ScrollKeyMap
	// Back returns the focus to the list.
	Back key.Binding
}

// DefaultDetailKeyMap returns the detail pane's keys.
func DefaultDetailKeyMap() DetailKeyMap {
	return DetailKeyMap{
		ScrollKeyMap: DefaultScrollKeyMap(),
		Back:         key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to list")),
	}
}

// ShortHelp implements help.KeyMap.
func (k DetailKeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Up, k.Down, k.Back} }

// FullHelp implements help.KeyMap.
func (k DetailKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom, k.Back}}
}

// TimelineKeyMap are the keys of the timeline pane.
type TimelineKeyMap struct {
	ScrollKeyMap
	// Back returns the focus to the list.
	Back key.Binding
}

// DefaultTimelineKeyMap returns the timeline's keys; Bottom also resumes
// following new events.
func DefaultTimelineKeyMap() TimelineKeyMap {
	k := TimelineKeyMap{
		ScrollKeyMap: DefaultScrollKeyMap(),
		Back:         key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to list")),
	}
	k.Bottom.SetHelp("G", "bottom (follow)")
	return k
}

// ShortHelp implements help.KeyMap.
func (k TimelineKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Bottom, k.Back}
}

// FullHelp implements help.KeyMap.
func (k TimelineKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom, k.Back}}
}

// ConfirmKeyMap are the keys of the confirmation dialog.
type ConfirmKeyMap struct {
	// Yes runs the action, No cancels it.
	Yes, No key.Binding
}

// DefaultConfirmKeyMap returns y/Enter to confirm and n/Esc to cancel.
func DefaultConfirmKeyMap() ConfirmKeyMap {
	return ConfirmKeyMap{
		Yes: key.NewBinding(key.WithKeys("y", "enter"), key.WithHelp("y/enter", "confirm")),
		No:  key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "cancel")),
	}
}

// ShortHelp implements help.KeyMap.
func (k ConfirmKeyMap) ShortHelp() []key.Binding { return []key.Binding{k.Yes, k.No} }

// FullHelp implements help.KeyMap.
func (k ConfirmKeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{{k.Yes, k.No}} }

// ReplayKeyMap are the keys of the replay viewer.
type ReplayKeyMap struct {
	ScrollKeyMap
	// Step shows the next event, Pause plays or pauses, Faster and Slower
	// change the speed.
	Step, Pause, Faster, Slower, Help, Quit key.Binding
}

// DefaultReplayKeyMap returns the replay viewer's keys.
func DefaultReplayKeyMap() ReplayKeyMap {
	return ReplayKeyMap{
		ScrollKeyMap: DefaultScrollKeyMap(),
		Step:         key.NewBinding(key.WithKeys("n", " ", "right"), key.WithHelp("n/space", "next event")),
		Pause:        key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "play/pause")),
		Faster:       key.NewBinding(key.WithKeys("+", "="), key.WithHelp("+", "faster")),
		Slower:       key.NewBinding(key.WithKeys("-"), key.WithHelp("-", "slower")),
		Help:         key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:         key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp implements help.KeyMap.
func (k ReplayKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Step, k.Pause, k.Faster, k.Slower, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap.
func (k ReplayKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Step, k.Pause, k.Faster, k.Slower},
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Help, k.Quit},
	}
}

// splitKeys turns a run of typed runes into one key press per rune.
// Bubbletea v1 delivers the printable runes of one terminal read as a single
// KeyMsg, so keys typed faster than the program reads them (at start-up, or
// sent by a script) arrive as "jjj", which no binding matches. A bracketed
// paste stays whole.
func splitKeys(msg tea.KeyMsg) []tea.KeyMsg {
	if msg.Type != tea.KeyRunes || msg.Paste || len(msg.Runes) < 2 {
		return []tea.KeyMsg{msg}
	}
	out := make([]tea.KeyMsg, len(msg.Runes))
	for i, r := range msg.Runes {
		out[i] = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}
	}
	return out
}
