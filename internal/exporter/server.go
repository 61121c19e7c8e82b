package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// DefaultListen is where `fdtop exporter` serves by default: loopback
// only (fd stores and holders say much about a host; `--listen :9786`
// exposes it), on a port in the 9100-9999 range exporters use, away from
// the well-known ones (9090-9094 Prometheus and its parts, 9100
// node_exporter). It was not checked against
// Prometheus's wiki list of default port allocations (no network where
// it was chosen): do so, and claim it there, before a release.
const DefaultListen = "127.0.0.1:9786"

// Listen opens the metrics server's address, so that a port in use is an
// error at the start, before the model runs.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Gatherer gathers the exporter's metrics and the usual process and Go
// runtime ones of an exporter. The exporter's are gathered again only
// when what they show changed since the last scrape (a new picture, a
// handoff, the doctor, the manager lost or back): an idle host's scrape
// only encodes them (on 1,000 units a gathering is most of a scrape's
// CPU; see BenchmarkScrape1000).
func Gatherer(e *Exporter) prometheus.Gatherer {
	own := prometheus.NewRegistry()
	own.MustRegister(e)
	rt := prometheus.NewRegistry()
	rt.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &gatherer{e: e, own: own, runtime: rt}
}

// gatherer is Gatherer's: the exporter's families cached by generation.
type gatherer struct {
	e            *Exporter
	own, runtime *prometheus.Registry

	mu    sync.Mutex
	gen   uint64
	valid bool
	mfs   []*dto.MetricFamily // never changed once gathered: scrapes share them
}

// Gather implements prometheus.Gatherer.
func (g *gatherer) Gather() ([]*dto.MetricFamily, error) {
	own, err := g.gatherOwn()
	if err != nil {
		return nil, err
	}
	rt, err := g.runtime.Gather()
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(own)+len(rt))
	out = append(append(out, own...), rt...) // fdtop_* apart from go_* and process_*
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

func (g *gatherer) gatherOwn() ([]*dto.MetricFamily, error) {
	gen := g.e.generation() // read before: a change while gathering makes the next scrape gather again
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.valid && g.gen == gen {
		return g.mfs, nil
	}
	mfs, err := g.own.Gather()
	if err != nil {
		return nil, err
	}
	g.mfs, g.gen, g.valid = mfs, gen, true
	return mfs, nil
}

// Serve serves /metrics from reg on ln until ctx ends: the text format,
// or OpenMetrics when the scraper asks for it. errLog gets the errors of
// scrapes (one line each).
func Serve(ctx context.Context, ln net.Listener, reg prometheus.Gatherer, errLog io.Writer) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics:   true,
		ErrorLog:            log.New(errLog, "fdtop exporter: scrape: ", 0),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<html><head><title>fdtop exporter</title></head><body><h1>fdtop exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>`+"\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(errLog, "fdtop exporter: http: ", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("serve metrics: %w", err)
}
