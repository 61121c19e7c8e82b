package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// TestNoMainPIDUnknownNotObserved: a handoff whose time without a main
// process was not seen (issue 20 case 1) is no observation of 0 s.
func TestNoMainPIDUnknownNotObserved(t *testing.T) {
	e := New(Options{Version: "1.2.3"})
	e.now = func() time.Time { return t0 }
	e.OnSnapshot(picture(t0))
	e.Observe(handoff("web.service", t0, inspect.Handoff{ListenersKept: 2, NoMainPIDUnknown: true, OldPID: 1, NewPID: 2}))
	out, err := testutil.CollectAndFormat(e, expfmt.TypeTextPlain, "fdtop_handoff_no_main_pid_seconds")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "fdtop_handoff_no_main_pid_seconds_count") && !strings.HasSuffix(l, " 0") {
			t.Errorf("%s: a gap not seen was observed", l)
		}
	}
}
