// Package sshtest starts real OpenSSH servers for fdtop's remote tests: each
// "host" is an sshd on its own loopback address 127.0.0.N (N >= 2, never
// anything outside 127.0.0.0/8) with its own host key, one authorized test
// key shared by the fleet, and an ssh client configuration (known_hosts,
// identity) in a private temp dir. Each host's sessions get the environment
// the test gives it (sshd_config SetEnv), typically a sandbox's
// XDG_RUNTIME_DIR, so each host has its own systemd manager.
//
// sshd runs as root in the foreground (-D -e) with StrictModes and PAM off;
// t.Cleanup stops it and every process it started by PID and removes the
// temp dir. Under CI=true a missing openssh-server fails the test.
package sshtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fdtop/fdtop/demo/sandbox"
	"github.com/fdtop/fdtop/demo/sandboxtest"
	"github.com/fdtop/fdtop/internal/syncbuf"
)

// Sshd is where Debian's openssh-server puts the server (it must be run by
// its absolute path: it re-executes itself per connection).
const Sshd = "/usr/sbin/sshd"

// Fleet is a set of test hosts sharing one client configuration.
type Fleet struct {
	// Dir is the fleet's private temp dir (keys, configs, logs).
	Dir string
	// Config is the ssh client configuration file: identity, known_hosts,
	// BatchMode. `ssh -F Config` reaches every host of the fleet.
	Config string

	t          testing.TB
	mu         sync.Mutex
	knownHosts string
	pubKey     string
}

// Host is one sshd.
type Host struct {
	// Target is how to name the host on fdtop's command line: "127.0.0.N:PORT".
	Target string
	// Addr is its loopback address and Port its port.
	Addr string
	Port int
	// Home is the HOME its sessions get (a fresh dir per host, so
	// ~/.cache/fdtop is the host's own).
	Home string
	// PID is the listening sshd.
	PID int

	log     *syncbuf.Buffer
	cfgPath string
}

// Require checks for ssh, ssh-keygen and sshd (and root, which sshd needs
// to run sessions).
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		sandboxtest.Unavailable(t, "sshd test hosts need root")
	}
	if _, err := os.Stat(Sshd); err != nil {
		sandboxtest.Unavailable(t, "%s not found: apt-get install openssh-server", Sshd)
	}
	for _, bin := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(bin); err != nil {
			sandboxtest.Unavailable(t, "%s not found: apt-get install openssh-client", bin)
		}
	}
}

// New creates a fleet with no hosts yet: the test key, an empty
// known_hosts and the client configuration.
func New(t testing.TB) *Fleet {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "fdtop-sshtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &Fleet{Dir: dir, Config: filepath.Join(dir, "ssh_config"), t: t, knownHosts: filepath.Join(dir, "known_hosts")}
	key := filepath.Join(dir, "id_ed25519")
	keygen(t, key, "fdtop-test-client")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f.pubKey = string(pub)
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.knownHosts, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Join([]string{
		"Host *",
		"  User root",
		"  IdentityFile " + key,
		"  IdentitiesOnly yes",
		"  UserKnownHostsFile " + f.knownHosts,
		"  GlobalKnownHostsFile /dev/null",
		"  StrictHostKeyChecking yes",
		"  BatchMode yes",
		"  ConnectTimeout 10",
		"  LogLevel ERROR",
		"",
	}, "\n")
	if err := os.WriteFile(f.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// PublicKey is the fleet's authorized test key (an authorized_keys line).
func (f *Fleet) PublicKey() string { return f.pubKey }

// AddProxyHost adds a host reached through a ProxyCommand instead of a
// loopback address (e.g. an sshd in a container's own network namespace,
// through nsenter): alias names it on fdtop's command line, hostKey is its
// public host key ("ssh-ed25519 AAAA…").
func (f *Fleet) AddProxyHost(t testing.TB, alias, proxyCommand, hostKey string) {
	t.Helper()
	fields := strings.Fields(hostKey)
	if len(fields) < 2 {
		t.Fatalf("sshtest: host key %q", hostKey)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	block := fmt.Sprintf("\nHost %s\n  ProxyCommand %s\n  HostKeyAlias %s\n", alias, proxyCommand, alias)
	for path, line := range map[string]string{f.Config: block, f.knownHosts: fmt.Sprintf("%s %s %s\n", alias, fields[0], fields[1])} {
		file, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		_, err = file.WriteString(line)
		file.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// SSH is the ssh command that reaches the fleet: fdtop's --ssh value.
func (f *Fleet) SSH() string { return "ssh -F " + f.Config }

var nextAddr atomic.Int32

// loopback returns the next loopback address of this process, 127.0.0.2
// and up (127.0.0.1 is left to everything else).
func loopback() string {
	n := 2 + nextAddr.Add(1)%250
	return fmt.Sprintf("127.0.0.%d", n)
}

// freePort returns a TCP port free on addr right now.
func freePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("pick a port on %s: %v", addr, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Unreachable returns a target on a loopback address where nothing
// listens: connecting is refused.
func (f *Fleet) Unreachable(t testing.TB) string {
	t.Helper()
	addr := loopback()
	return fmt.Sprintf("%s:%d", addr, freePort(t, addr))
}

// AddHost starts an sshd whose sessions get env ("NAME=value" each, e.g. a
// sandbox's Env()) on top of a HOME of their own, and adds its host key to
// the fleet's known_hosts.
func (f *Fleet) AddHost(t testing.TB, env ...string) *Host {
	t.Helper()
	h := f.AddHostDown(t, env...)
	h.start(t)
	return h
}

// AddHostDown is AddHost without starting its sshd: connecting to the host
// is refused until Start (a host still booting).
func (f *Fleet) AddHostDown(t testing.TB, env ...string) *Host {
	t.Helper()
	addr := loopback()
	h := &Host{Addr: addr, Port: freePort(t, addr), log: &syncbuf.Buffer{}}
	h.Target = fmt.Sprintf("%s:%d", h.Addr, h.Port)
	dir, err := os.MkdirTemp(f.Dir, "host-")
	if err != nil {
		t.Fatal(err)
	}
	h.Home = filepath.Join(dir, "home")
	if err := os.Mkdir(h.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	keygen(t, hostKey, "fdtop-test-host-"+h.Target)
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	fields := strings.Fields(string(pub))
	line := fmt.Sprintf("[%s]:%d %s %s\n", h.Addr, h.Port, fields[0], fields[1])
	kh, err := os.OpenFile(f.knownHosts, os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		_, err = kh.WriteString(line)
		kh.Close()
	}
	f.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	setenv := []string{"HOME=" + h.Home}
	for _, e := range env {
		if strings.ContainsAny(e, " \t\"\n") {
			t.Fatalf("sshtest: SetEnv value with blanks or quotes: %q", e)
		}
		setenv = append(setenv, e)
	}
	cfg := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)),
		"HostKey " + hostKey,
		"PidFile none",
		"AuthorizedKeysFile " + filepath.Join(f.Dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PrintMotd no",
		"PrintLastLog no",
		"MaxSessions 64",
		"SetEnv " + strings.Join(setenv, " "),
		"",
	}, "\n")
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd's privilege separation directory (Debian's tmpfiles.d creates
	// it at boot; a container may not have it). It is the package's own
	// directory, so it stays.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	h.cfgPath = cfgPath
	return h
}

// Restart starts the host's sshd again (after Kill), on the same address
// with the same host key.
func (h *Host) Restart(t testing.TB) {
	t.Helper()
	h.start(t)
}

// Start starts the sshd of a host added down (AddHostDown) and returns
// once it accepts connections.
func (h *Host) Start(t testing.TB) {
	t.Helper()
	h.start(t)
}

// start runs sshd and waits until it accepts connections; the test's
// cleanup stops it.
func (h *Host) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(Sshd, "-D", "-e", "-f", h.cfgPath)
	cmd.Stdout = h.log
	cmd.Stderr = h.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	h.PID = cmd.Process.Pid
	pid := h.PID
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { h.stop(t, pid, exited) })

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("sshd on %s exited at start: %s", h.Target, strings.TrimSpace(h.log.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd on %s not listening after 10 s: %v", h.Target, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the listening sshd and every process it started (sessions,
// agents), by PID, and waits until they are gone.
func (h *Host) stop(t testing.TB, pid int, exited <-chan struct{}) {
	pids := append(descendants(pid), pid)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for sandbox.Alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if sandbox.Alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	<-exited
	for _, pid := range pids {
		if sandbox.Alive(pid) {
			t.Errorf("sshtest: pid %d of sshd %s still running", pid, h.Target)
		}
	}
}

// Kill ends the sshd and its sessions at once (SIGKILL, by PID): every
// connection to the host drops, as when it goes off the network. Restart
// brings it back.
func (h *Host) Kill() {
	if h.PID == 0 {
		return // never started (AddHostDown): pid 0 would be our own group
	}
	pids := append(descendants(h.PID), h.PID)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Log is what the sshd printed so far.
func (h *Host) Log() string { return h.log.String() }

// descendants lists the processes below pid (children first found, then
// theirs), read from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func keygen(t testing.TB, path, comment string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}
