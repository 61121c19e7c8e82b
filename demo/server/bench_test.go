package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/activation/activationtest"
)

// BenchmarkHandoffStop measures how long a handoff instance takes to store n
// client connections and its state and to stop (systemd's stop budget is
// the point: the handoff must be quick).
func BenchmarkHandoffStop(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			sd := newFakeSystemd(b, activationtest.Options{StoreMax: 1024})
			in := sd.start(Config{Mode: ModeHandoff})
			for i := 0; i < n; i++ {
				c := dial(b, in.addr.String())
				c.send("x\n")
				c.expect(1, "x")
			}
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				total += in.stop(b)
				in = sd.start(Config{Mode: ModeHandoff})
			}
			b.StopTimer()
			in.stop(b)
			b.ReportMetric(float64(total.Microseconds())/float64(b.N), "stop-µs/op")
		})
	}
}
