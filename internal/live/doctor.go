package live

import (
	"context"
	"fmt"
	"strings"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/inspect"
	"github.com/fdtop/fdtop/internal/unitlog"
	"github.com/fdtop/fdtop/procfs"
)

// doctorLogLines is how many log lines per unit the doctor reads.
const doctorLogLines = 20

// DoctorOptions say what the doctor reads.
type DoctorOptions struct {
	// Snapshot is the live model's picture; nil: Doctor takes one
	// (a full scan with FullScan).
	Snapshot *inspect.Snapshot
	Patterns []string
	// User: the manager is a user manager (its log is the user journal).
	User     bool
	FullScan bool
}

// Doctor reads what inspect.Diagnose needs: a full snapshot (snap, the live
// model's picture, or a fresh one when nil), the units'
// results and exit statuses, templates, logs and who holds the addresses
// of failed sockets.
func Doctor(ctx context.Context, client *dbusclient.Client, b *inspect.Builder, o DoctorOptions) (inspect.DoctorInput, error) {
	snap, patterns, user, fullScan := o.Snapshot, o.Patterns, o.User, o.FullScan
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

// Findings implements ui.DoctorSource: fdtop doctor's checks on the
// dashboard's units, in the live model's picture.
func (s *Source) Findings(ctx context.Context) ([]inspect.Finding, error) {
	// The model's picture, once there is one: a snapshot of the doctor's
	// own beside the model's first would double the start-up's work.
	select {
	case <-s.first:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	in, err := Doctor(ctx, s.client, s.builder, DoctorOptions{Snapshot: s.Current(), Patterns: s.builder.Patterns, User: s.builder.Scope == "user", FullScan: !s.targetedOnly})
	if err != nil {
		return nil, err
	}
	return inspect.Diagnose(in), nil
}
