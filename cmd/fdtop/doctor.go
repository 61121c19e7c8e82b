package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/live"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/spf13/cobra"
)

// doctorOptions are `fdtop doctor`'s flags and patterns.
type doctorOptions struct {
	IO       *ioStreams
	Manager  managerFlags
	Patterns []string
	JSON     bool
}

// NewCmdDoctor is `fdtop doctor`.
func NewCmdDoctor(ios *ioStreams, runF func(*doctorOptions) int) *cobra.Command {
	opts := &doctorOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "doctor [--user|--system] [--address ADDR] [--json] [PATTERN...]",
		Short: "what keeps socket activation or a handoff from working: per finding the evidence and the fix (exit 0 nothing found, 1 findings, 4 nothing matched)",
		Long: `Checks the units matching the patterns (failed and inactive ones too) and
prints, per finding, the unit, a code, the problem, the evidence read and the
fix. What it could not read is listed as not checked, never as fine.

Exit status: 0 nothing found, 1 findings (or an error), 2 usage error, 4 no unit
matched the patterns (nothing checked).`,
		Example: `  fdtop doctor --user
  fdtop doctor --json 'web*'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Patterns = args
			if runF != nil {
				return exitStatus(runF(opts))
			}
			return exitStatus(doctorRun(opts))
		},
	}
	opts.Manager.register(cmd.Flags())
	cmd.ValidArgsFunction = opts.Manager.completeUnits
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object: {\"findings\": [...], \"unchecked\": [...]}")
	return cmd
}

// doctorRun finds what keeps socket activation or a handoff from working:
// exit 0 when nothing is found, 1 when something is, 2 for usage.
func doctorRun(opts *doctorOptions) int {
	mf := opts.Manager
	if err := mf.validate(); err != nil {
		return fail(opts.IO.Err, "doctor", err)
	}
	mf.all = true // a failed or dead unit is what the doctor is after
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	return sig.exit(doctor(ctx, sig, mf, opts.Patterns, opts.JSON, opts.IO.Out, opts.IO.Err))
}

// doctor runs the doctor once the flags are checked; an error caused by a
// termination signal is not printed (the exit status tells it).
func doctor(ctx context.Context, sig *caught, mf managerFlags, patterns []string, asJSON bool, stdout, stderr io.Writer) int {
	client, b, err := mf.connectHostWide(ctx, patterns)
	if err != nil {
		return failUnlessSignalled(stderr, "doctor", sig, err)
	}
	defer client.Close()
	in, err := live.Doctor(ctx, client, b, live.DoctorOptions{Patterns: patterns, User: mf.user, FullScan: true})
	if err != nil {
		return failUnlessSignalled(stderr, "doctor", sig, err)
	}
	findings := inspect.Diagnose(in)
	unchecked := inspect.Unchecked(in)
	nothing := inspect.NothingMatched(in)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Findings  []inspect.Finding `json:"findings"`
			Unchecked []string          `json:"unchecked"`
			Unmatched []string          `json:"unmatched_patterns,omitempty"`
			Nothing   bool              `json:"nothing_checked,omitempty"`
		}{findings, append([]string{}, unchecked...), in.Snapshot.Unmatched, nothing}); err != nil {
			return fail(stderr, "doctor", err)
		}
	} else if err := writeFindings(stdout, findings, unchecked, nothing); err != nil {
		return fail(stderr, "doctor", err)
	}
	switch {
	case len(findings) > 0:
		return exitRuntime
	case nothing:
		return exitNoMatch
	}
	return exitOK
}

// writeFindings prints the findings for a person, every outside string
// through termsafe.
func writeFindings(w io.Writer, findings []inspect.Finding, unchecked []string, nothing bool) error {
	var b strings.Builder
	switch {
	case nothing:
		b.WriteString("nothing checked:\n")
	case len(findings) == 0 && len(unchecked) == 0:
		b.WriteString("no findings: nothing keeps socket activation or a handoff from working here\n")
	case len(findings) == 0:
		b.WriteString("no findings in what fdtop could read; not checked:\n")
	}
	for i, f := range findings {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s  %s\n", termsafe.String(f.Unit), f.Code)
		fmt.Fprintf(&b, "  problem:  %s\n", termsafe.String(f.Problem))
		for j, e := range f.Evidence {
			label := "evidence:"
			if j > 0 {
				label = "         "
			}
			fmt.Fprintf(&b, "  %s %s\n", label, termsafe.String(e))
		}
		fmt.Fprintf(&b, "  fix:      %s\n", termsafe.String(f.Fix))
	}
	if len(findings) > 0 {
		fmt.Fprintf(&b, "\n%d finding(s)\n", len(findings))
		if len(unchecked) > 0 {
			b.WriteString("not checked:\n")
		}
	}
	for _, u := range unchecked {
		fmt.Fprintf(&b, "  - %s\n", termsafe.String(u))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
