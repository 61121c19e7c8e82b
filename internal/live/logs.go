package live

import (
	"context"
	"fmt"

	"github.com/fdtop/fdtop/internal/unitlog"
)

// FollowLog implements ui.LogSource: the journal where there is one, else
// the manager's log and the units' output files (the demo's sandbox).
func (s *Source) FollowLog(ctx context.Context, units []string) (<-chan unitlog.Line, bool, error) {
	r := unitlog.Reader{User: s.builder.Scope == "user"}
	var files []string
	if !r.HasJournal() {
		mgr, err := s.client.Processes(ctx, "init.scope")
		if err == nil && len(mgr) > 0 {
			r.ManagerPID = int(mgr[0].PID)
		}
		facts, err := s.client.Facts(ctx, units, nil)
		if err != nil {
			return nil, false, fmt.Errorf("unit files: %w", err)
		}
		for _, u := range units {
			if f, ok := facts[u]; ok {
				files = append(files, f.FragmentPath)
				files = append(files, f.DropInPaths...)
			}
		}
	}
	return r.Follow(ctx, units, files, 50)
}
