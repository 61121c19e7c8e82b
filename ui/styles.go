package ui

import "github.com/charmbracelet/lipgloss"

// Styles are every style the dashboard draws with, built once by
// DefaultStyles and handed to the panes.
type Styles struct {
	// Header styles the top line and its banners.
	Header struct {
		Title, Text, Muted, Probe, Banner, Busy lipgloss.Style
	}
	// Pane styles the pane titles.
	Pane struct {
		Title, FocusedTitle lipgloss.Style
	}
	// List styles the unit list.
	List struct {
		Header, Row, Selected, SelectedBlurred, Warning, Muted, Filter lipgloss.Style
	}
	// State styles the state glyphs.
	State struct {
		Active, Transition, Failed, Inactive lipgloss.Style
	}
	// Detail styles the detail pane.
	Detail struct {
		Section, Label, Text, Muted, Explain, Warning, Inferred lipgloss.Style
	}
	// Timeline styles the timeline.
	Timeline struct {
		Time, Host, Unit, Text, Good, Bad, Caution lipgloss.Style
	}
	// Confirm styles the confirmation dialog.
	Confirm struct {
		Box, Title, Text, Keys lipgloss.Style
	}
	// Status styles the status line.
	Status struct {
		Text, Error, Busy lipgloss.Style
	}
	// Help styles the help screen headings.
	Help struct {
		Title, Note lipgloss.Style
	}
}

// DefaultStyles returns fdtop's styles. Under NO_COLOR (or any Ascii colour
// profile) lipgloss drops every attribute, so the panes never rely on
// colour alone: the cursor, focus and verdicts also have glyphs.
func DefaultStyles() Styles {
	var s Styles
	accent := lipgloss.AdaptiveColor{Light: "27", Dark: "39"}
	muted := lipgloss.AdaptiveColor{Light: "245", Dark: "243"}
	good := lipgloss.AdaptiveColor{Light: "28", Dark: "42"}
	bad := lipgloss.AdaptiveColor{Light: "160", Dark: "203"}
	caution := lipgloss.AdaptiveColor{Light: "130", Dark: "214"}

	s.Header.Title = lipgloss.NewStyle().Bold(true).Foreground(accent)
	s.Header.Text = lipgloss.NewStyle()
	s.Header.Muted = lipgloss.NewStyle().Foreground(muted)
	s.Header.Probe = lipgloss.NewStyle().Foreground(caution)
	s.Header.Banner = lipgloss.NewStyle().Bold(true).Foreground(caution)
	s.Header.Busy = lipgloss.NewStyle().Foreground(accent)

	s.Pane.Title = lipgloss.NewStyle().Foreground(muted)
	s.Pane.FocusedTitle = lipgloss.NewStyle().Bold(true).Foreground(accent)

	s.List.Header = lipgloss.NewStyle().Foreground(muted)
	s.List.Row = lipgloss.NewStyle()
	s.List.Selected = lipgloss.NewStyle().Reverse(true)
	s.List.SelectedBlurred = lipgloss.NewStyle().Bold(true)
	s.List.Warning = lipgloss.NewStyle().Foreground(caution)
	s.List.Muted = lipgloss.NewStyle().Foreground(muted)
	s.List.Filter = lipgloss.NewStyle().Foreground(accent)

	s.State.Active = lipgloss.NewStyle().Foreground(good)
	s.State.Transition = lipgloss.NewStyle().Foreground(caution)
	s.State.Failed = lipgloss.NewStyle().Foreground(bad)
	s.State.Inactive = lipgloss.NewStyle().Foreground(muted)

	s.Detail.Section = lipgloss.NewStyle().Bold(true)
	s.Detail.Label = lipgloss.NewStyle().Foreground(muted)
	s.Detail.Text = lipgloss.NewStyle()
	s.Detail.Muted = lipgloss.NewStyle().Foreground(muted)
	s.Detail.Explain = lipgloss.NewStyle().Italic(true).Foreground(accent)
	s.Detail.Warning = lipgloss.NewStyle().Foreground(caution)
	s.Detail.Inferred = lipgloss.NewStyle().Foreground(muted)

	s.Timeline.Time = lipgloss.NewStyle().Foreground(muted)
	s.Timeline.Host = lipgloss.NewStyle().Bold(true)
	s.Timeline.Unit = lipgloss.NewStyle().Foreground(accent)
	s.Timeline.Text = lipgloss.NewStyle()
	s.Timeline.Good = lipgloss.NewStyle().Bold(true).Foreground(good)
	s.Timeline.Bad = lipgloss.NewStyle().Bold(true).Foreground(bad)
	s.Timeline.Caution = lipgloss.NewStyle().Bold(true).Foreground(caution)

	s.Confirm.Box = lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(caution).Padding(0, 1)
	s.Confirm.Title = lipgloss.NewStyle().Bold(true)
	s.Confirm.Text = lipgloss.NewStyle()
	s.Confirm.Keys = lipgloss.NewStyle().Foreground(muted)

	s.Status.Text = lipgloss.NewStyle()
	s.Status.Error = lipgloss.NewStyle().Foreground(bad)
	s.Status.Busy = lipgloss.NewStyle().Foreground(accent)

	s.Help.Title = lipgloss.NewStyle().Bold(true)
	s.Help.Note = lipgloss.NewStyle().Foreground(caution)
	return s
}
