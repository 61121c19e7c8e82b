package exporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo"
	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/internal/syncbuf"
)

func TestMain(m *testing.M) { sandboxtest.Main(m) }

// prometheusBin and promtoolBin are Debian's (the prometheus package,
// which .ci/test installs with no service started).
const (
	prometheusBin = "/usr/bin/prometheus"
	promtoolBin   = "/usr/bin/promtool"
)

// needTool fails (under CI) or skips the test without bin.
func needTool(t *testing.T, bin string) {
	t.Helper()
	if _, err := os.Stat(bin); err != nil {
		sandboxtest.Unavailable(t, "%s not found: apt-get install prometheus", bin)
	}
}

// TestRealPrometheus: a real Prometheus scrapes `fdtop exporter` on a
// sandbox manager every second; restarts of the demo's handoff and plain
// services show in its queries as the verdicts fdtop gave them, and the fd
// store's maximum as the manager says it. promtool checks a scrape. Then
// the manager re-executes (the exporter reconnects) and goes away (the
// exporter keeps serving, fdtop_up 0, the reason on stderr).
func TestRealPrometheus(t *testing.T) {
	needTool(t, prometheusBin)
	needTool(t, promtoolBin)
	sandboxtest.Each(t, func(t *testing.T, sb *sandbox.Sandbox) {
		ctx := context.Background()
		cfg := sandboxtest.InstallDemo(t, sb, 300*time.Millisecond)
		sandboxtest.Traffic(t, cfg.Addr(demo.Handoff), 4, 100*time.Millisecond)
		ports, err := demo.FreePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		exporterAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		stderr := startExporter(t, "--user", "--address", sb.Address, "--listen", exporterAddr, "demo-*", "demo-plain.service")
		metricsURL := "http://" + exporterAddr + "/metrics"
		waitUntil(t, 60*time.Second, "the exporter's fdtop_up 1", func() bool {
			return strings.Contains(get(t, metricsURL), "\nfdtop_up 1\n")
		})
		promtoolCheck(t, get(t, metricsURL))

		prom := startPrometheus(t, exporterAddr, ports[1])
		waitUntil(t, 90*time.Second, "the target up in /api/v1/targets", func() bool { return prom.targetUp(t) })

		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the exporter's handoff counters:\n%s", grepLines(get(t, metricsURL), "fdtop_handoffs_total{"))
			}
		})
		// Each restart is counted under the verdict fdtop gave it: under
		// heavy load a handoff's connections can be honestly unknown (a
		// view missed), so the handoff service is restarted again, a few
		// times at most, until one is seen preserved.
		handoffs := func(unit string) float64 {
			v, _ := prom.query(t, `sum(fdtop_handoffs_total{name="`+unit+`"})`)
			return v
		}
		restart := func(unit string) {
			t.Helper()
			before := handoffs(unit)
			if _, err := sb.Systemctl(ctx, "restart", unit); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 90*time.Second, unit+"'s handoff counted", func() bool { return handoffs(unit) > before })
		}
		restart("demo-plain.service")
		preserved := `sum(increase(fdtop_handoffs_total{name="demo-handoff.service",connections="preserved"}[1m]))`
		for i := 0; ; i++ {
			restart("demo-handoff.service")
			if v, ok := prom.query(t, preserved); ok && v >= 1 {
				break
			}
			if i == 4 {
				t.Fatalf("5 restarts of demo-handoff.service, none counted with connections preserved (%s)", preserved)
			}
			t.Logf("restart %d of demo-handoff.service not seen preserved: again", i+1)
		}
		for _, q := range []string{
			`sum(increase(fdtop_handoffs_total{name="demo-plain.service",listener="replaced"}[1m]))`,
		} {
			waitUntil(t, 90*time.Second, q+" >= 1", func() bool {
				v, ok := prom.query(t, q)
				return ok && v >= 1
			})
		}
		out, err := sb.Systemctl(ctx, "show", "-p", "FileDescriptorStoreMax", "--value", "demo-handoff.service")
		if err != nil {
			t.Fatal(err)
		}
		want, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil || want == 0 {
			t.Fatalf("FileDescriptorStoreMax of demo-handoff.service: %q", out)
		}
		waitUntil(t, 30*time.Second, fmt.Sprintf("fdtop_fdstore_max == %v", want), func() bool {
			v, ok := prom.query(t, `fdtop_fdstore_max{name="demo-handoff.service"}`)
			return ok && v == want
		})

		// daemon-reexec: the connection drops and comes back.
		if _, err := sb.Systemctl(ctx, "daemon-reexec"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 60*time.Second, "a disconnect counted and fdtop_up 1 again", func() bool {
			m := get(t, metricsURL)
			return strings.Contains(m, "\nfdtop_manager_disconnects_total 1\n") && strings.Contains(m, "\nfdtop_up 1\n")
		})
		// The manager gone: still serving, fdtop_up 0, no unit gauges.
		if err := sb.Close(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 60*time.Second, "fdtop_up 0 once the manager is gone", func() bool {
			m := get(t, metricsURL)
			return strings.Contains(m, "\nfdtop_up 0\n") && !strings.Contains(m, "fdtop_fdstore_max{")
		})
		if !strings.Contains(stderr.String(), "the manager went away") {
			t.Errorf("the exporter's stderr does not say the manager went away:\n%s", stderr.String())
		}
	})
}

// grepLines returns the lines of s that contain sub and do not end in " 0".
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasSuffix(l, " 0") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// startExporter runs `fdtop exporter ARGS` until the test ends and
// returns its stderr.
func startExporter(t *testing.T, args ...string) *syncbuf.Buffer {
	t.Helper()
	var stderr syncbuf.Buffer
	cmd := exec.Command(sandboxtest.Fdtop(t), append([]string{"exporter"}, args...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("fdtop exporter's stderr:\n%s", stderr.String())
		}
	})
	return &stderr
}

// get fetches url's body ("" when it cannot).
func get(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// promtoolCheck runs `promtool check metrics` on a scrape.
func promtoolCheck(t *testing.T, scrape string) {
	t.Helper()
	if scrape == "" {
		t.Fatal("empty scrape")
	}
	cmd := exec.Command(promtoolBin, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// waitUntil polls cond until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promServer is a Prometheus the test started.
type promServer struct{ base string }

// startPrometheus runs Debian's prometheus on 127.0.0.1:port with a
// temporary config scraping target every second and temporary storage;
// it is stopped by its PID and its directory removed when the test ends.
func startPrometheus(t *testing.T, target string, port int) *promServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "fdtop-prometheus-")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: fdtop\n    static_configs:\n      - targets: ['%s']\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(prometheusBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "prometheus.log")); err == nil {
				t.Logf("prometheus's log:\n%s", b)
			}
		}
		os.RemoveAll(dir)
	})
	return &promServer{base: "http://" + listen}
}

// targetUp reports whether /api/v1/targets has the one target up.
func (p *promServer) targetUp(t *testing.T) bool {
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	body := get(t, p.base+"/api/v1/targets")
	if body == "" || json.Unmarshal([]byte(body), &r) != nil {
		return false
	}
	return len(r.Data.ActiveTargets) == 1 && r.Data.ActiveTargets[0].Health == "up"
}

// query runs an instant query; ok is false unless it returned one sample.
func (p *promServer) query(t *testing.T, q string) (float64, bool) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	body := get(t, p.base+"/api/v1/query?query="+url.QueryEscape(q))
	if body == "" || json.Unmarshal([]byte(body), &r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, false
	}
	s, ok := r.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// TestAlertRules: the shipped alert rules pass `promtool check rules` and
// their unit tests (`promtool test rules`, testdata/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	needTool(t, promtoolBin)
	for _, args := range [][]string{
		{"check", "rules", "../../docs/prometheus/alerts.yml"},
		{"test", "rules", "testdata/alerts_test.yml"},
	} {
		out, err := exec.Command(promtoolBin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestScrapeFormats: the server answers the text format, and OpenMetrics
// when asked; promtool checks the text one.
func TestScrapeFormats(t *testing.T) {
	needTool(t, promtoolBin)
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Gatherer(fed(Options{Version: "1.2.3", Probe: true})), io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + ln.Addr().String() + "/metrics"
	tests := []struct {
		name, accept, contentType, end string
	}{
		{"text", "", "text/plain; version=0.0.4", "fdtop_up 1\n"},
		{"openmetrics", "application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=1.0.0", "# EOF\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			if !strings.Contains(string(body), tt.end) {
				t.Errorf("the scrape lacks %q", tt.end)
			}
			if tt.accept == "" {
				promtoolCheck(t, string(body))
			}
		})
	}
}
