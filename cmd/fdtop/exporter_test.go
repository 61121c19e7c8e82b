package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// TestExporterBadInput: a port in use is one line and exit 1, at once
// (before any manager is asked); a bad flag is exit 2.
func TestExporterBadInput(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"port in use", []string{"exporter", "--listen", addr, "--address", "unix:path=/nonexistent"}, exitRuntime,
			"fdtop exporter: listen on " + addr + ": listen tcp " + addr + ": bind: address already in use"},
		{"bad include", []string{"exporter", "--unit-include", "("}, exitUsage, "fdtop exporter: --unit-include: unit filter \"(\""},
		{"bad exclude", []string{"exporter", "--unit-exclude", "a[", "--listen", addr}, exitUsage, "fdtop exporter: --unit-exclude: unit filter \"a[\""},
		{"negative max", []string{"exporter", "--max-units", "-1"}, exitUsage, "fdtop exporter: --max-units -1: must be 0 (no limit) or more"},
		{"user and system", []string{"exporter", "--user", "--system"}, exitUsage, "fdtop exporter: --user and --system exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tt.want) {
				t.Errorf("stderr:\n%s\nwant one line starting %q", stderr.String(), tt.want)
			}
		})
	}
}
