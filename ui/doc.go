// Package ui is fdtop's live dashboard, a bubbletea program on top of
// inspect.
package ui
