// Package demo holds fdtop's built-in demonstration: four unit sets that run
// the same demo server in the four ways a service can own its listener
// (plain, socket-activated, socket-activated with an fd-store handoff, and
// a listener the service binds once and keeps in its own fd store).
// The sandbox that runs them is in demo/sandbox; the server itself in
// demo/server; the traffic generator in demo/traffic.
package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode is one of the demo server's ways of owning its listener.
type Mode string

// The demo modes.
const (
	// Plain binds its own listener: restarts refuse connections and drop clients.
	Plain Mode = "plain"
	// Activated takes its listener from a .socket unit: restarts refuse
	// nothing (connections queue in the backlog) but drop clients.
	Activated Mode = "activated"
	// Handoff takes its listener from a .socket unit and hands its client
	// connections over through the fd store: restarts refuse and drop nothing.
	Handoff Mode = "handoff"
	// StoredListener has no socket unit: its first start binds the
	// listener and stores it in the fd store (FDSTORE=1, FDNAME=listener),
	// later starts take it from there. Restarts refuse nothing after the
	// first start (the manager holds the listener) but drop clients.
	StoredListener Mode = "stored-listener"
)

// Modes lists the demo modes in the order they are shown.
var Modes = []Mode{Plain, Activated, Handoff, StoredListener}

// Short is the mode's name in unit names and on the scoreboard:
// "stored" for StoredListener, the mode itself otherwise.
func (m Mode) Short() string {
	if m == StoredListener {
		return "stored"
	}
	return string(m)
}

// Service returns the service unit name of a mode, e.g. demo-handoff.service.
func (m Mode) Service() string { return "demo-" + m.Short() + ".service" }

// Socket returns the socket unit name of a mode, or "" for the modes
// without one (Plain, StoredListener).
func (m Mode) Socket() string {
	if m == Plain || m == StoredListener {
		return ""
	}
	return "demo-" + m.Short() + ".socket"
}

// PinTarget is the target that keeps demo-stored.service loaded while it is
// stopped (Config.PreserveStore only).
const PinTarget = "fdtop-demo.target"

// Sockets lists the socket units of the demo modes that have one.
func Sockets() []string {
	var out []string
	for _, m := range Modes {
		if s := m.Socket(); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Config describes the demo unit sets.
type Config struct {
	// Fdtop is the absolute path of the fdtop binary the units run.
	Fdtop string
	// Ports maps each mode to its TCP port on 127.0.0.1.
	Ports map[Mode]int
	// StartupDelay is the simulated start-up work of every mode.
	StartupDelay time.Duration
	// PreserveStore sets FileDescriptorStorePreserve=yes in
	// demo-stored.service (systemd 254+ only: older managers do not know
	// the setting): a stop then keeps the stored listener open.
	PreserveStore bool
	// LogDir, if set, gets each service's stdout and stderr in
	// <service>.log (the sandbox has no journal); Install quotes a failed
	// service's log in its error.
	LogDir string
}

// LogPath is the log file of a mode's service, "" without a LogDir.
func (c Config) LogPath(m Mode) string {
	if c.LogDir == "" {
		return ""
	}
	return filepath.Join(c.LogDir, m.Service()+".log")
}

// logLines are the unit lines that send a service's output to its log.
func (c Config) logLines(m Mode) []string {
	if c.LogDir == "" {
		return nil
	}
	return []string{"StandardOutput=append:" + c.LogPath(m), "StandardError=append:" + c.LogPath(m)}
}

// Addr returns the loopback address a mode's clients connect to.
func (c Config) Addr(m Mode) string {
	return fmt.Sprintf("127.0.0.1:%d", c.Ports[m])
}

// FreePorts picks n currently free TCP ports on 127.0.0.1 and reserves
// them among fdtop processes for the life of this one.
//
// A port is free only until someone binds it, and the demo's services bind
// theirs later (plain after its start-up delay, and again at every
// restart). So the ports come from below the kernel's ephemeral range (no
// client's local port lands there), and each is claimed with an abstract
// Unix socket "@fdtop-port-N" held open by this process: two test packages
// (or demos) running at once never pick the same port, and the claim goes
// away with the process, leaving nothing on disk.
func FreePorts(n int) ([]int, error) {
	lo, hi := portPool()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			return nil, fmt.Errorf("pick a free port: none free in %d-%d after %d tries", lo, hi, tries)
		}
		p := lo + rand.IntN(hi-lo)
		if !claimPort(p) {
			continue // another fdtop process (or this one) has it
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken by something else: stays claimed, never tried again
		}
		l.Close()
		ports = append(ports, p)
	}
	return ports, nil
}

var (
	claimsMu sync.Mutex
	claims   []net.PacketConn // held for the process's life: the claims
)

// claimPort claims port p among fdtop processes: false if it is claimed.
func claimPort(p int) bool {
	c, err := net.ListenPacket("unixgram", fmt.Sprintf("@fdtop-port-%d", p))
	if err != nil {
		return false
	}
	claimsMu.Lock()
	defer claimsMu.Unlock()
	claims = append(claims, c)
	return true
}

// portPool is the range FreePorts picks from: the 10000 ports below the
// start of /proc/sys/net/ipv4/ip_local_port_range (32768 when unreadable).
func portPool() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 2048 {
				hi = v
			}
		}
	}
	return max(hi-10000, 1024), hi
}

// NewConfig returns a Config with free ports for every mode and the default
// start-up delay of 500 ms.
func NewConfig(fdtop string) (Config, error) {
	ports, err := FreePorts(len(Modes))
	if err != nil {
		return Config{}, err
	}
	c := Config{Fdtop: fdtop, Ports: map[Mode]int{}, StartupDelay: 500 * time.Millisecond}
	for i, m := range Modes {
		c.Ports[m] = ports[i]
	}
	return c, nil
}

// KnowsStorePreserve reports whether a manager of this version (its
// Version property, e.g. "254.26-1~bpo12+1") has FileDescriptorStorePreserve=
// (systemd 254 and later); false when the version does not parse.
func KnowsStorePreserve(version string) bool {
	end := 0
	for end < len(version) && version[end] >= '0' && version[end] <= '9' {
		end++
	}
	major, err := strconv.Atoi(version[:end])
	return err == nil && major >= 254
}

// Units returns the unit files of the four demo sets, by file name.
func (c Config) Units() map[string]string {
	service := func(m Mode, extra ...string) []string {
		exec := fmt.Sprintf("ExecStart=%s demo-server --mode %s --startup-delay %s", c.Fdtop, m, c.StartupDelay)
		if m == Plain || m == StoredListener {
			exec += " --listen " + c.Addr(m)
		}
		lines := append([]string{"Type=notify", "NotifyAccess=main"}, extra...)
		lines = append(lines, exec, "TimeoutStopSec=5")
		return append(lines, c.logLines(m)...)
	}
	u := map[string]string{}
	u[Plain.Service()] = unit(
		"fdtop demo: plain (binds its own listener, no socket activation)",
		"[Service]", service(Plain)...)
	u[Activated.Socket()] = unit(
		"fdtop demo: activated (listener held by systemd)",
		"[Socket]",
		"ListenStream="+c.Addr(Activated),
	)
	u[Activated.Service()] = unit(
		"fdtop demo: activated (takes its listener from demo-activated.socket)",
		"[Service]", service(Activated)...)
	u[Handoff.Socket()] = unit(
		"fdtop demo: handoff (listener held by systemd)",
		"[Socket]",
		"ListenStream="+c.Addr(Handoff),
	)
	u[Handoff.Service()] = unit(
		"fdtop demo: handoff (listener from the socket, clients through the fd store)",
		"[Service]", service(Handoff, "FileDescriptorStoreMax=1024")...)
	// Room to spare: a full store is a doctor finding.
	stored := []string{"FileDescriptorStoreMax=4"}
	if c.PreserveStore {
		stored = append(stored, "FileDescriptorStorePreserve=yes")
	}
	u[StoredListener.Service()] = unit(
		"fdtop demo: stored-listener (binds its listener once, keeps it in its fd store)",
		"[Service]", service(StoredListener, stored...)...)
	if c.PreserveStore {
		// A stopped unit nothing refers to is unloaded at once, and its
		// fd store with it, whatever FileDescriptorStorePreserve= says
		// (seen on 254): an enabled service is kept loaded by its
		// target's Wants=, and this target does the same here.
		u[PinTarget] = "[Unit]\nDescription=fdtop demo: keeps " + StoredListener.Service() +
			" loaded while it is stopped, as an enabled service is\nWants=" + StoredListener.Service() + "\n"
	}
	return u
}

func unit(description, section string, lines ...string) string {
	head := "[Unit]\nDescription=" + description + "\n"
	if section == "[Service]" {
		// The demo is for pressing restart again and again (and the soak
		// test restarts 500 times): no start rate limit.
		head += "StartLimitIntervalSec=0\n"
	}
	return head + "\n" + section + "\n" + strings.Join(lines, "\n") + "\n"
}

// UnitHost is where the demo units are installed and started: a sandbox.
type UnitHost interface {
	WriteUnit(name, content string) error
	Systemctl(ctx context.Context, args ...string) (string, error)
}

// Install writes the demo units, reloads the manager and starts the sockets
// and the services.
func Install(ctx context.Context, h UnitHost, c Config) error {
	for name, content := range c.Units() {
		if err := h.WriteUnit(name, content); err != nil {
			return err
		}
	}
	if _, err := h.Systemctl(ctx, "daemon-reload"); err != nil {
		return err
	}
	start := append([]string{"start"}, Sockets()...)
	if _, err := h.Systemctl(ctx, start...); err != nil {
		return err
	}
	start = []string{"start"}
	for _, m := range Modes {
		start = append(start, m.Service())
	}
	if c.PreserveStore {
		start = append(start, PinTarget)
	}
	if _, err := h.Systemctl(ctx, start...); err != nil {
		return fmt.Errorf("%w%s", err, c.logTails())
	}
	return nil
}

// logTails quotes the last lines of each service's log, for an error.
func (c Config) logTails() string {
	var b strings.Builder
	for _, m := range Modes {
		data, err := os.ReadFile(c.LogPath(m))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(strings.ToValidUTF8(string(data), "?")), "\n")
		lines = lines[max(len(lines)-5, 0):]
		fmt.Fprintf(&b, "\n%s said:\n\t%s", m.Service(), strings.Join(lines, "\n\t"))
	}
	return b.String()
}
