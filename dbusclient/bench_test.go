package dbusclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
)

// benchUnits is how many socket units (each with a service) the benchmark
// generates.
const benchUnits = 1000

// benchSandbox starts a manager with benchUnits listening socket units and
// their inactive services.
func benchSandbox(b *testing.B, v sandboxtest.Version) *sandbox.Sandbox {
	b.Helper()
	sb := sandboxtest.Start(b, v)
	names := make([]string, 0, benchUnits)
	for i := range benchUnits {
		name := fmt.Sprintf("bench%04d", i)
		if err := sb.WriteUnit(name+".socket", fmt.Sprintf("[Socket]\nListenStream=%s/b%d.sock\n", sb.RuntimeDir, i)); err != nil {
			b.Fatal(err)
		}
		if err := sb.WriteUnit(name+".service", "[Service]\nExecStart=/bin/sleep 300\n"); err != nil {
			b.Fatal(err)
		}
		names = append(names, name+".socket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := sb.Systemctl(ctx, "daemon-reload"); err != nil {
		b.Fatal(err)
	}
	if _, err := sb.Systemctl(ctx, append([]string{"start"}, names...)...); err != nil {
		b.Fatal(err)
	}
	return sb
}

func benchConnect(b *testing.B, sb *sandbox.Sandbox) *Client {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, Options{Address: sb.Address})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// settle waits out the manager's rate limit on a connection's event
// source (about 50,000 dispatches a second; a Load is 17,000 calls), so
// back-to-back iterations measure a first load rather than the limit.
func settle(b *testing.B) {
	b.StopTimer()
	time.Sleep(1100 * time.Millisecond)
	b.StartTimer()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkManager1000 measures, against a manager with 1,000 socket
// units each with a service:
//   - ListSocketsVsSystemctl: ListListeners(all) (the same data) side by
//     side with `systemctl --user list-sockets --all` (ratio = ours /
//     systemctl's), and the full ListSockets;
//   - Load: everything the dashboard shows, on a connected client;
//   - ConnectLoad: the same from a fresh connection;
//   - RefreshOne: one unit's socket and service re-read (calls/op);
//   - EventLatency: the manager's PropertiesChanged, as a second connection
//     sees it arrive, to the UnitChanged on the subscription's channel.
//
// Run: go test -run XXX -bench Manager1000 -benchtime 20x ./dbusclient/
func BenchmarkManager1000(b *testing.B) {
	if testing.Short() {
		b.Skip("-short")
	}
	for _, v := range sandboxtest.Versions() {
		b.Run("systemd"+v.Name, func(b *testing.B) {
			sb := benchSandbox(b, v)
			c := benchConnect(b, sb)
			ctx := context.Background()
			b.Run("ListSocketsVsSystemctl", func(b *testing.B) {
				var ours, theirs, full []time.Duration
				for b.Loop() {
					settle(b)
					t0 := time.Now()
					out, err := sb.Systemctl(ctx, "list-sockets", "--all", "--no-legend")
					theirs = append(theirs, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
					t0 = time.Now()
					socks, err := c.ListListeners(ctx, nil, true)
					ours = append(ours, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
					t0 = time.Now()
					if _, err := c.ListSockets(ctx, nil, true); err != nil {
						b.Fatal(err)
					}
					full = append(full, time.Since(t0))
					if n := strings.Count(out, "\n"); len(socks) < benchUnits || n < benchUnits {
						b.Fatalf("ListSockets: %d sockets, systemctl: %d lines", len(socks), n)
					}
				}
				b.ReportMetric(ms(median(ours)), "ours-ms")
				b.ReportMetric(ms(median(theirs)), "systemctl-ms")
				b.ReportMetric(float64(median(ours))/float64(median(theirs)), "ratio")
				b.ReportMetric(ms(median(full)), "ListSockets-ms")
			})
			b.Run("Load", func(b *testing.B) {
				var ds []time.Duration
				calls0 := c.calls.Load()
				for b.Loop() {
					settle(b)
					t0 := time.Now()
					st, err := c.Load(ctx, nil, true)
					ds = append(ds, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
					if len(st.Sockets) < benchUnits || len(st.Services) < benchUnits {
						b.Fatalf("Load: %d sockets, %d services", len(st.Sockets), len(st.Services))
					}
				}
				b.ReportMetric(ms(median(ds)), "median-ms")
				b.ReportMetric(ms(slices.Max(ds)), "max-ms")
				b.ReportMetric(float64(c.calls.Load()-calls0)/float64(len(ds)), "calls/op")
			})
			b.Run("ConnectLoad", func(b *testing.B) {
				var ds []time.Duration
				for b.Loop() {
					settle(b)
					t0 := time.Now()
					c2, err := Connect(ctx, Options{Address: sb.Address})
					if err != nil {
						b.Fatal(err)
					}
					_, err = c2.Load(ctx, nil, true)
					ds = append(ds, time.Since(t0))
					c2.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(ms(median(ds)), "median-ms")
			})
			b.Run("RefreshOne", func(b *testing.B) {
				calls0 := c.calls.Load()
				n := 0
				for b.Loop() {
					name := fmt.Sprintf("bench%04d", n%benchUnits)
					n++
					if _, err := c.Socket(ctx, name+".socket"); err != nil {
						b.Fatal(err)
					}
					if _, err := c.Service(ctx, name+".service"); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(c.calls.Load()-calls0)/float64(n), "calls/op")
			})
			b.Run("EventLatency", func(b *testing.B) { benchEventLatency(b, sb, c) })
		})
	}
}

// benchEventLatency toggles a socket unit and times, for each
// PropertiesChanged carrying its ActiveState, the arrival on a raw monitor
// connection against the UnitChanged on a subscription.
func benchEventLatency(b *testing.B, sb *sandbox.Sandbox, c *Client) {
	ctx := context.Background()
	mon, err := sandbox.Dial(ctx, sb.Address)
	if err != nil {
		b.Fatal(err)
	}
	defer mon.Close()
	if err := kickConn(ctx, mon); err != nil {
		b.Fatal(err)
	}
	mgr := mon.Object(busName, managerPath)
	if err := mgr.Call(ifaceManager+".Subscribe", 0).Err; err != nil {
		b.Fatal(err)
	}
	type seen struct {
		state string
		at    time.Time
	}
	unit := "bench0000.socket"
	path := UnitPath(unit)
	wire := make(chan seen, 64)
	msgs := make(chan *dbus.Message, 4096)
	go func() {
		for m := range msgs {
			at := time.Now()
			if m.Type != dbus.TypeSignal {
				continue
			}
			p, _ := m.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
			if p != path {
				continue
			}
			if ev, ok := decodePropertiesChanged(p, m.Body, at).(UnitChanged); ok && ev.Iface == IfaceUnit && ev.Changes.ActiveState != nil {
				wire <- seen{*ev.Changes.ActiveState, at}
			}
		}
	}()
	mon.Eavesdrop(msgs) // replies are not routed any more: calls go through c
	sub, err := c.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var lat []time.Duration
	stop := true
	for b.Loop() {
		var err error
		if stop {
			_, err = c.Stop(ctx, unit)
		} else {
			_, err = c.Start(ctx, unit)
		}
		if err != nil {
			b.Fatal(err)
		}
		want := "inactive"
		if !stop {
			want = "active"
		}
		stop = !stop
		var wireAt time.Time
		for wireAt.IsZero() {
			select {
			case s := <-wire:
				if s.state == want {
					wireAt = s.at
				}
			case <-time.After(5 * time.Second):
				b.Fatal("monitor saw no PropertiesChanged")
			}
		}
		for done := false; !done; {
			select {
			case ev := <-sub.Events():
				if uc, ok := ev.(UnitChanged); ok && uc.Unit == unit && uc.Changes.ActiveState != nil && *uc.Changes.ActiveState == want {
					lat = append(lat, max(time.Since(wireAt), 0))
					done = true
				}
			case <-time.After(5 * time.Second):
				b.Fatal("subscription delivered no UnitChanged")
			}
		}
	}
	b.ReportMetric(float64(median(lat))/float64(time.Microsecond), "median-µs")
}
