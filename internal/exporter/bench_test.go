package exporter

import (
	"fmt"
	"io"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/inspect"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// bigPicture is a picture of n units: n/2 socket units each with its
// service, the shape tools/idle-cost gives its sandbox manager, but every
// service running (the most series: tools/idle-cost's never ran).
func bigPicture(n int) *inspect.Snapshot {
	snap := &inspect.Snapshot{Time: t0, Manager: inspect.Manager{Scope: "system", Version: "254", PID: 1}, Host: inspect.HostInfo{Root: true}}
	mgr := inspect.Holder{PID: 1, FD: 40, Comm: "systemd", Manager: true}
	for i := 0; i < n/2; i++ {
		snap.Sockets = append(snap.Sockets, inspect.SocketUnit{Unit: fmt.Sprintf("idle-%04d.socket", i), Service: fmt.Sprintf("idle-%04d.service", i),
			Listeners: []inspect.Listener{{Type: "Stream", Address: fmt.Sprintf("/run/idle-%04d.sock", i), Inode: uint64(1000 + i), Holders: []inspect.Holder{mgr}}}})
		snap.Services = append(snap.Services, inspect.Service{Unit: fmt.Sprintf("idle-%04d.service", i), ActiveState: "active", MainPID: 2000 + i,
			Sockets: []string{fmt.Sprintf("idle-%04d.socket", i)}, FDStoreMax: uint32(i % 2 * 16)})
	}
	return snap
}

// BenchmarkScrape1000 is one scrape of /metrics (the exporter's series,
// the Go and process collectors', text format) with 1,000 units, each
// service with a handoff counted: what Prometheus waits for.
//
//	go test -run - -bench Scrape1000 -benchtime 200x ./internal/exporter/
func BenchmarkScrape1000(b *testing.B) {
	e := New(Options{Version: "bench", MaxUnits: 1000})
	snap := bigPicture(1000)
	e.OnSnapshot(snap)
	for _, svc := range snap.Services {
		e.Observe(handoff(svc.Unit, t0.Add(time.Second), inspect.Handoff{ListenersKept: 1, ConnectionsPreserved: 2, NoMainPIDMs: 80}))
	}
	h := promhttp.HandlerFor(Gatherer(e), promhttp.HandlerOpts{})
	b.ReportAllocs()
	var size int
	cpu0 := cpuTime()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		size = rec.Body.Len()
		_, _ = io.Copy(io.Discard, rec.Body)
	}
	b.ReportMetric(float64(size), "bytes/scrape")
	// CPU time, not wall time: on a loaded machine the wall time is mostly
	// waiting for a core.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/scrape")
}

// cpuTime is the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
