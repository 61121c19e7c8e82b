package fleet

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fdtop/fdtop/inspect/agent"
	"github.com/fdtop/fdtop/internal/clierr"
	"github.com/fdtop/fdtop/internal/termsafe"
)

// Target is one host as given on the command line: [user@]host[:port].
type Target struct {
	Spec string // as given: the "target" of JSON output
	User string
	Host string
	Port string
}

// ParseTarget reads [user@]host[:port] (an IPv6 address in brackets when a
// port follows: [::1]:22).
func ParseTarget(s string) (Target, error) {
	t := Target{Spec: s}
	rest := s
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		t.User, rest = rest[:i], rest[i+1:]
		if t.User == "" {
			return t, clierr.Usage(fmt.Sprintf("host %q: empty user before @", s))
		}
	}
	switch {
	case strings.HasPrefix(rest, "["):
		h, p, err := net.SplitHostPort(rest)
		if err != nil {
			h = strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]")
			p = ""
			if strings.ContainsAny(h, "[]") {
				return t, clierr.Usage(fmt.Sprintf("host %q: bad address", s))
			}
		}
		t.Host, t.Port = h, p
	case strings.Count(rest, ":") == 1:
		t.Host, t.Port, _ = strings.Cut(rest, ":")
	default:
		t.Host = rest // a bare IPv6 address has several colons and no port
	}
	if t.Host == "" {
		return t, clierr.Usage(fmt.Sprintf("host %q: empty host name", s))
	}
	if strings.HasPrefix(t.Host, "-") || strings.ContainsAny(t.Host, " \t\n'\"") {
		return t, clierr.Usage(fmt.Sprintf("host %q: not a host name", s))
	}
	if t.Port != "" {
		if n, err := strconv.Atoi(t.Port); err != nil || n < 1 || n > 65535 {
			return t, clierr.Usage(fmt.Sprintf("host %q: bad port %q", s, t.Port))
		}
	}
	return t, nil
}

// splitWords splits a command line like a POSIX shell does for words:
// blanks separate, single and double quotes and backslashes group (no
// expansions).
func splitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch {
			case r == '"':
				quote = 0
			case r == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[i+1]):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			in = true
		case r == ' ' || r == '\t' || r == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sshTransport runs the system's OpenSSH client: one ControlMaster per
// host, in a private temp dir, and channels that reuse it.
type sshTransport struct {
	cmd     []string // the ssh command and its own options (--ssh)
	dir     string   // ControlPath directory, mode 0700
	version string   // this fdtop's (--push names the copy by it)

	mu      sync.Mutex
	n       int
	masters []*sshHost
}

// newSSHTransport checks the ssh command line and makes the private dir.
func newSSHTransport(command, version string) (*sshTransport, error) {
	words, err := splitWords(command)
	if err != nil {
		return nil, clierr.Usage(fmt.Sprintf("--ssh: %v", err))
	}
	if len(words) == 0 {
		return nil, clierr.Usage("--ssh: empty command")
	}
	if _, err := exec.LookPath(words[0]); err != nil {
		return nil, fmt.Errorf("ssh client %q not found (install openssh-client, or name one with --ssh): %w", words[0], err)
	}
	dir, err := os.MkdirTemp("", "fdtop-ssh-")
	if err != nil {
		return nil, fmt.Errorf("control socket dir: %w", err)
	}
	return &sshTransport{cmd: words, dir: dir, version: version}, nil
}

// Close stops every ControlMaster by PID and removes the private dir.
func (t *sshTransport) Close() {
	t.mu.Lock()
	masters := t.masters
	t.masters = nil
	t.mu.Unlock()
	for _, h := range masters {
		h.stop()
	}
	os.RemoveAll(t.dir)
}

// sshHost is one host with its ControlMaster.
type sshHost struct {
	t       *sshTransport
	target  Target
	control string
	master  *exec.Cmd
	stderr  *lockedBuffer
	exited  chan struct{}
}

// lockedBuffer is a bytes.Buffer safe for a writer and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64*1024 {
		l.b.Reset() // a chatty master: keep the latest words only
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sshMessage is what ssh said, on one line: its last non-empty lines
// (the reason comes last), sanitized for the terminal.
func sshMessage(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(strings.TrimSuffix(l, "\r")); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return termsafe.String(strings.Join(lines, "; "))
}

// hostArgs are the options naming the host and its port and user.
func (h *sshHost) hostArgs() []string {
	var a []string
	if h.target.Port != "" {
		a = append(a, "-p", h.target.Port)
	}
	if h.target.User != "" {
		a = append(a, "-l", h.target.User)
	}
	return append(a, "--", h.target.Host)
}

// Open starts the host's ControlMaster and returns once it is up (the
// control socket exists), or with ssh's own message when it exits. With
// interactive set, ssh may ask for passwords and host keys on the
// terminal; otherwise BatchMode forbids it.
func (t *sshTransport) Open(ctx context.Context, tg Target, interactive bool) (*sshHost, error) {
	t.mu.Lock()
	t.n++
	h := &sshHost{t: t, target: tg, control: filepath.Join(t.dir, fmt.Sprintf("h%d", t.n)), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	t.mu.Unlock()
	args := append(append([]string(nil), t.cmd[1:]...),
		"-M", "-N", "-n", "-o", "ControlPath="+h.control, "-o", "ControlPersist=no",
		"-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3")
	if !interactive {
		args = append(args, "-o", "BatchMode=yes")
	}
	args = append(args, h.hostArgs()...)
	h.master = exec.Command(t.cmd[0], args...)
	h.master.Stderr = h.stderr
	h.master.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// A ProxyCommand's process may outlive ssh holding its stderr pipe:
	// Wait must not wait for it.
	h.master.WaitDelay = time.Second
	if err := h.master.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.cmd[0], err)
	}
	go func() { _ = h.master.Wait(); close(h.exited) }()
	t.mu.Lock()
	// Masters that ended (failed tries, lost hosts) are forgotten: a host
	// retried all day leaves none behind.
	kept := t.masters[:0]
	for _, m := range t.masters {
		select {
		case <-m.exited:
		default:
			kept = append(kept, m)
		}
	}
	t.masters = append(kept, h)
	t.mu.Unlock()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(h.control); err == nil {
			return h, nil
		}
		select {
		case <-h.exited:
			msg := sshMessage(h.stderr.String())
			if msg == "" {
				msg = fmt.Sprintf("ssh exited (%v) without a message", h.master.ProcessState)
			}
			return nil, errors.New(msg)
		case <-ctx.Done():
			h.stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// stop ends the ControlMaster by PID and waits for it.
func (h *sshHost) stop() {
	select {
	case <-h.exited:
		return
	default:
	}
	_ = h.master.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(3 * time.Second):
		_ = h.master.Process.Kill()
		<-h.exited
	}
}

// Lost reports why the master ended ("" while it is up).
func (h *sshHost) Lost() string {
	select {
	case <-h.exited:
		if m := sshMessage(h.stderr.String()); m != "" {
			return m
		}
		return "connection closed"
	default:
		return ""
	}
}

// Command is a channel over the master running remote (a shell command
// line) on the host; BatchMode, so it never prompts.
func (h *sshHost) Command(ctx context.Context, remote string) *exec.Cmd {
	args := append(append([]string(nil), h.t.cmd[1:]...),
		"-S", h.control, "-o", "ControlMaster=no", "-o", "BatchMode=yes", "-T")
	args = append(args, h.hostArgs()...)
	args = append(args, remote)
	cmd := exec.CommandContext(ctx, h.t.cmd[0], args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = time.Second // see Open
	return cmd
}

// Run runs remote and returns its output, or an error with what it said.
func (h *sshHost) Run(ctx context.Context, remote string, stdin io.Reader) (string, error) {
	cmd := h.Command(ctx, remote)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Run(); err != nil {
		if m := sshMessage(errb.String()); m != "" {
			return out.String(), errors.New(m)
		}
		return out.String(), err
	}
	return out.String(), nil
}

// AgentOptions are how the agent is started on each host.
type AgentOptions struct {
	Args    []string // the agent's flags and patterns
	Sudo    bool     // run it under sudo -n
	Push    bool     // copy this binary when the remote has no matching fdtop
	Version string   // this fdtop's version (the agent's file name, ~/.cache/fdtop/fdtop-VERSION)
}

// missingMarker starts the line the remote script prints when it found no
// fdtop speaking our protocol.
const missingMarker = "fdtop-agent-missing:"

// agentScript is the remote shell script that finds an fdtop speaking this
// protocol and execs its agent: ~/.cache/fdtop/fdtop-VERSION at once (this
// very version, as --push leaves it: its hello says its protocol), then
// fdtop on PATH and any other in ~/.cache/fdtop, each asked for its
// protocol first (an fdtop from before the agent would not know the
// subcommand).
func agentScript(o AgentOptions) string {
	quoted := make([]string, len(o.Args))
	for i, a := range o.Args {
		quoted[i] = shellQuote(a)
	}
	sudo := ""
	if o.Sudo {
		sudo = "sudo -n -- "
	}
	script := fmt.Sprintf(`v=%s; p=%d; seen=
f="$HOME/.cache/fdtop/fdtop-$v"
if [ -f "$f" ] && [ -x "$f" ]; then exec %[3]s"$f" agent %[4]s; fi
for f in "$(command -v fdtop 2>/dev/null)" "$HOME"/.cache/fdtop/fdtop-*; do
  [ -n "$f" ] && [ -f "$f" ] && [ -x "$f" ] || continue
  got=$("$f" agent --protocol 2>/dev/null </dev/null)
  if [ "$got" = "$p" ]; then exec %[3]s"$f" agent %[4]s; fi
  seen="$seen $f (protocol ${got:-none})"
done
echo "%[5]s$seen" >&2; exit 127`, shellQuote(o.Version), agent.Protocol, sudo, strings.Join(quoted, " "), missingMarker)
	return "sh -c " + shellQuote(script)
}

// remoteAgent is an agent running on a host over its ControlMaster.
type remoteAgent struct {
	*agent.Client
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	done   chan struct{}
	// received counts the protocol bytes read from the agent.
	received atomic.Int64
}

// countingReader counts what passes through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Close ends the agent's channel (its stdin first: the agent exits) and
// waits for the ssh process.
func (a *remoteAgent) Close() {
	a.stdin.Close()
	select {
	case <-a.done:
	case <-time.After(3 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// Why says why the agent's channel ended: ssh's message when the
// connection went, else what the remote said.
func (a *remoteAgent) Why(h *sshHost) string {
	if m := h.Lost(); m != "" {
		return m
	}
	msg := "the agent's channel closed"
	if m := sshMessage(a.stderr.String()); m != "" {
		msg += ": " + m
	}
	return msg
}

// StartAgent starts the agent on h (pushing this binary first with
// o.Push when the remote has none that speaks this protocol).
func (h *sshHost) StartAgent(ctx context.Context, o AgentOptions) (*remoteAgent, error) {
	a, err := h.startAgent(ctx, o)
	var (
		missing *missingError
		other   *agent.ProtocolError
	)
	// ~/.cache/fdtop/fdtop-VERSION is run without asking its protocol: an
	// old build of this same version speaking another is pushed over too.
	if (errors.As(err, &missing) || errors.As(err, &other)) && o.Push {
		if err := h.push(ctx); err != nil {
			return nil, fmt.Errorf("--push: %w", err)
		}
		return h.startAgent(ctx, o)
	}
	return a, err
}

// missingError: the remote has no fdtop speaking this protocol.
type missingError struct{ seen, version string }

func (e *missingError) Error() string {
	found := "none"
	if s := strings.TrimSpace(e.seen); s != "" {
		found = s
	}
	return fmt.Sprintf("no fdtop with agent protocol %d on the remote (looked for ~/.cache/fdtop/fdtop-%s and fdtop on PATH; found: %s): install fdtop %s there, or run with --push to copy this binary to ~/.cache/fdtop/fdtop-%s",
		agent.Protocol, e.version, termsafe.String(found), e.version, e.version)
}

func (h *sshHost) startAgent(ctx context.Context, o AgentOptions) (*remoteAgent, error) {
	cmd := h.Command(context.Background(), agentScript(o))
	a := &remoteAgent{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = a.stderr
	var err error
	if a.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); close(a.done) }()
	a.Client, err = agent.NewClient(ctx, countingReader{stdout, &a.received}, a.stdin, 4096)
	if err != nil {
		a.Close() // stdin closed: the agent (or the script) ends; killed if it does not
		said := a.stderr.String()
		if i := strings.Index(said, missingMarker); i >= 0 {
			line, _, _ := strings.Cut(said[i+len(missingMarker):], "\n")
			return nil, &missingError{seen: line, version: o.Version}
		}
		if o.Sudo && strings.Contains(said, "sudo:") {
			return nil, &lastingError{err: fmt.Errorf("--sudo: sudo -n refused (it would need a password or is not allowed; allow NOPASSWD for fdtop or drop --sudo): %s", sshMessage(said)),
				why: "each try would be refused and logged again; allow it and start fdtop again"}
		}
		if m := sshMessage(said); m != "" {
			return nil, fmt.Errorf("agent: %w: %s", err, m)
		}
		return nil, fmt.Errorf("agent: %w", err)
	}
	return a, nil
}

// goarch maps `uname -m` to Go's GOARCH.
func goarch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i386", "i486", "i586", "i686":
		return "386"
	case "armv6l", "armv7l":
		return "arm"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	case "riscv64":
		return "riscv64"
	}
	return machine
}

// isStatic reports whether the ELF file at path has no interpreter.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// push copies this binary to ~/.cache/fdtop/fdtop-VERSION on the host,
// after checking the remote's architecture and that the binary is static.
func (h *sshHost) push(ctx context.Context) error {
	out, err := h.Run(ctx, "uname -sm", nil)
	if err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return fmt.Errorf("uname -sm said %q", termsafe.String(strings.TrimSpace(out)))
	}
	if strings.ToLower(f[0]) != runtime.GOOS || goarch(f[1]) != runtime.GOARCH {
		return &lastingError{err: fmt.Errorf("the remote is %s %s, this fdtop is %s/%s: build one for it (GOOS=linux GOARCH=%s CGO_ENABLED=0 go build ./cmd/fdtop) and install it there",
			termsafe.String(f[0]), termsafe.String(f[1]), runtime.GOOS, runtime.GOARCH, goarch(f[1])), why: "this binary cannot run there"}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	static, err := isStatic(self)
	if err != nil {
		return fmt.Errorf("read %s: %w", self, err)
	}
	if !static {
		return &lastingError{err: fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0 to push it", self), why: "this binary cannot be pushed"}
	}
	bin, err := os.Open(self)
	if err != nil {
		return err
	}
	defer bin.Close()
	name := "fdtop-" + h.t.version
	script := fmt.Sprintf(`umask 077; d="$HOME/.cache/fdtop"; mkdir -p "$d" && t="$d/.%s.$$" && cat > "$t" && chmod 755 "$t" && mv -f "$t" "$d/%s"`, name, name)
	if _, err := h.Run(ctx, "sh -c "+shellQuote(script), bin); err != nil {
		return fmt.Errorf("copy to ~/.cache/fdtop/%s: %w", name, err)
	}
	return nil
}
