package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/termsafe"
	"github.com/fdtop/fdtop/internal/unitlog"
	"github.com/fdtop/fdtop/procfs"
)

// doctorLogLines is how many log lines per unit the doctor reads.
const doctorLogLines = 20

// runDoctor finds what keeps socket activation or a handoff from working:
// exit 0 when nothing is found, 1 when something is, 2 for usage.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fdtop doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "Usage: fdtop doctor [--user|--system] [--address ADDR] [--json] [PATTERN...]\n\n"+
			"Exit status: 0 nothing found, 1 findings (or an error), 2 usage error, 4 no unit matched the patterns (nothing checked).\n\n")
		fs.PrintDefaults()
	}
	var mf managerFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object: {\"findings\": [...]}")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := mf.validate(); err != nil {
		return fail(stderr, "doctor", err)
	}
	mf.all = true // a failed or dead unit is what the doctor is after
	ctx, sig, stop := withSignals(context.Background())
	defer stop()
	return sig.exit(doctor(ctx, sig, mf, fs.Args(), *asJSON, stdout, stderr))
}

// doctor runs the doctor once the flags are checked; an error caused by a
// termination signal is not printed (the exit status tells it).
func doctor(ctx context.Context, sig *caught, mf managerFlags, patterns []string, asJSON bool, stdout, stderr io.Writer) int {
	client, b, err := mf.connect(ctx, patterns)
	if err != nil {
		return failUnlessSignalled(stderr, "doctor", sig, err)
	}
	defer client.Close()
	in, err := gatherDoctor(ctx, client, b, nil, patterns, mf.user, true)
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

// gatherDoctor reads what Diagnose needs: a full snapshot (snap, the live
// model's picture, or a fresh one when nil), the units'
// results and exit statuses, templates, logs and who holds the addresses
// of failed sockets.
func gatherDoctor(ctx context.Context, client *dbusclient.Client, b *inspect.Builder, snap *inspect.Snapshot, patterns []string, user, fullScan bool) (inspect.DoctorInput, error) {
	var err error
	if snap == nil {
		if snap, err = b.Snapshot(ctx, inspect.SnapshotOptions{FullScan: fullScan}); err != nil {
			return inspect.DoctorInput{}, err
		}
	}
	in := inspect.DoctorInput{Snapshot: snap, Templates: map[string]bool{}, Logs: map[string][]inspect.LogLine{}, LogErrors: map[string]string{}, AddressHolders: map[string][]inspect.AddressHolder{}}
	var names []string
	for _, su := range snap.Sockets {
		names = append(names, su.Unit)
	}
	for _, svc := range snap.Services {
		names = append(names, svc.Unit)
	}
	var factPatterns []string
	for _, p := range patterns {
		factPatterns = append(factPatterns, socketOrService(p)...)
	}
	if in.Facts, err = client.Facts(ctx, names, factPatterns); err != nil {
		return in, fmt.Errorf("read unit results: %w", err)
	}
	for _, su := range snap.Sockets {
		if !su.Accept || su.Service == "" {
			continue
		}
		exists, known, err := client.UnitFileExists(ctx, su.Service)
		if err != nil {
			return in, err
		}
		if known {
			in.Templates[su.Service] = exists
		}
	}
	// Logs: of failed units, and of services that may send FDSTORE=1 (the
	// manager logs what it refused).
	logs := unitlog.Reader{User: user, ManagerPID: snap.Manager.PID}
	svcType := map[string]string{}
	for _, svc := range snap.Services {
		svcType[svc.Unit] = svc.Type
	}
	var failedSockets []string
	unheld := inspect.PassedUnheldSockets(snap)
	for name, f := range in.Facts {
		notify := strings.HasPrefix(svcType[name], "notify")
		if f.ActiveState != "failed" && !notify && !contains(unheld, name) {
			continue
		}
		if f.ActiveState == "failed" && strings.HasSuffix(name, ".socket") {
			failedSockets = append(failedSockets, name)
		}
		files := append([]string{f.FragmentPath}, f.DropInPaths...)
		lines, ok, err := logs.Last(ctx, name, files, doctorLogLines)
		if err != nil {
			if ctx.Err() != nil {
				return in, fmt.Errorf("log of %s: %w", name, err)
			}
			// An unreadable log is unknown evidence, not a reason to
			// find nothing.
			in.LogErrors[name] = err.Error()
			continue
		}
		if !ok {
			continue
		}
		ls := []inspect.LogLine{}
		for _, l := range lines {
			ls = append(ls, inspect.LogLine{Source: l.Source, Text: l.Message})
		}
		in.Logs[name] = ls
	}
	for _, name := range unheld {
		if _, ok := in.Facts[name]; ok {
			continue // read above
		}
		// A socket unit not loaded (inactive): its log says why.
		if lines, ok, err := logs.Last(ctx, name, nil, doctorLogLines); err == nil && ok {
			ls := []inspect.LogLine{}
			for _, l := range lines {
				ls = append(ls, inspect.LogLine{Source: l.Source, Text: l.Message})
			}
			in.Logs[name] = ls
		}
	}
	if len(failedSockets) > 0 {
		scan, err := b.Kernel.Scan(ctx, procfs.ScanOptions{})
		if err != nil {
			return in, fmt.Errorf("scan /proc: %w", err)
		}
		mgr := []int{snap.Manager.PID}
		for _, su := range snap.Sockets {
			if !contains(failedSockets, su.Unit) {
				continue
			}
			var ls []dbusclient.Listener
			for _, l := range su.Listeners {
				ls = append(ls, dbusclient.Listener{Type: l.Type, Address: l.Address})
			}
			if hs := inspect.FindAddressHolders(scan, mgr, snap.Manager.Scope, ls); len(hs) > 0 {
				in.AddressHolders[su.Unit] = hs
			}
		}
	}
	return in, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// socketOrService turns a pattern into the patterns of the socket and
// service units it names ("web*" stays; "web" becomes web.socket and
// web.service).
func socketOrService(p string) []string {
	if strings.HasSuffix(p, ".socket") || strings.HasSuffix(p, ".service") || strings.HasSuffix(p, "*") {
		return []string{p}
	}
	return []string{p + ".socket", p + ".service"}
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

// Findings implements ui.DoctorSource: fdtop doctor's checks on the
// dashboard's units, in the live model's picture.
func (s *liveSource) Findings(ctx context.Context) ([]inspect.Finding, error) {
	// The model's picture, once there is one: a snapshot of the doctor's
	// own beside the model's first would double the start-up's work.
	select {
	case <-s.first:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	in, err := gatherDoctor(ctx, s.client, s.builder, s.current(), s.builder.Patterns, s.builder.Scope == "user", !s.targetedOnly)
	if err != nil {
		return nil, err
	}
	return inspect.Diagnose(in), nil
}
