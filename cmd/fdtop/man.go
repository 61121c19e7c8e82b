package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

//go:generate go run . __man ../../docs/man

// manDate dates the man pages: fixed, so that generating them again
// changes nothing unless the definitions did.
var manDate = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

// writeManPages writes fdtop(1) and one page per command (fdtop-snapshot(1),
// …) into dir, from the same definitions as the command line and its help.
func writeManPages(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root := NewCmdRoot(&ioStreams{In: os.Stdin, Out: io.Discard, Err: io.Discard}, nil)
	root.DisableAutoGenTag = true
	for _, c := range root.Commands() {
		c.DisableAutoGenTag = true
	}
	header := &doc.GenManHeader{Title: "FDTOP", Section: "1", Source: "fdtop", Manual: "fdtop manual", Date: &manDate}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("man pages into %s: %w", dir, err)
	}
	return nil
}

// newCmdMan is the hidden `fdtop __man DIR` that go generate runs.
func newCmdMan() *cobra.Command {
	return &cobra.Command{
		Use:    "__man DIR",
		Short:  "write the man pages into DIR",
		Hidden: true,
		Args:   exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := writeManPages(args[0]); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), errorLine("__man", err))
				return exitStatus(exitRuntime)
			}
			return nil
		},
	}
}
