// Package ui is fdtop's live dashboard and recording player: bubbletea
// programs that show what a Source (built on inspect) reports and run the
// actions the operator asks for. Colour follows the terminal and NO_COLOR.
package ui
