package systemtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// alwaysMasked are units of this Debian image that do not belong in the
// test container whether or not the image enables them: databases, the
// apt/man-db/dpkg/e2scrub/fstrim timers, time sync (no network), the
// console getty, and ssh.service (the container's sshd runs per
// connection from ssh.socket instead).
var alwaysMasked = []string{
	"postgresql.service",
	"apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "dpkg-db-backup.timer",
	"e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
	"systemd-timesyncd.service", "console-getty.service", "getty@tty1.service",
	"ssh.service", "cron.service",
}

// sshSocket is the container's ssh.socket: Debian 12's own has Accept=no
// (one sshd for every connection); this one starts an sshd -i per
// connection, ssh@N-LOCAL-REMOTE.service, the Accept=yes shape.
const sshSocket = `[Unit]
Description=OpenSSH per-connection server socket (fdtop system test, Accept=yes)
Before=sockets.target
ConditionPathExists=!/etc/ssh/sshd_not_to_be_run

[Socket]
ListenStream=22
Accept=yes

[Install]
WantedBy=sockets.target
`

// sshService is the template ssh.socket's connections run in.
const sshService = `[Unit]
Description=OpenSSH per-connection server daemon (fdtop system test)
After=auditd.service

[Service]
ExecStart=-/usr/sbin/sshd -i
StandardInput=socket
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
`

// maskedUnits returns the units to mask: alwaysMasked, plus, when the
// image is this host's (lower is "/"), every non-target unit it enabled in
// /etc/systemd/system/*.wants (what an administrator or a package's
// postinst added), so a package installed on this host later does not
// start in the container either.
func maskedUnits(lower string) []string {
	set := map[string]bool{}
	for _, u := range alwaysMasked {
		set[u] = true
	}
	// A Debian tree of its own is a fresh system: what it enabled is its
	// distribution's default and stays (only alwaysMasked goes).
	var wants []string
	if lower == "/" {
		wants, _ = filepath.Glob("/etc/systemd/system/*.wants/*")
	}
	for _, w := range wants {
		u := filepath.Base(w)
		if !strings.HasSuffix(u, ".target") && u != "ssh.socket" { // the seed's own
			set[u] = true
		}
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// writeSeed fills dir with what the container's upper layer starts with:
// unit masks, the Accept=yes ssh.socket (enabled) and its template, a
// machine ID of its own (the host's would make journald refuse to link
// journals and mix the two in logs), and ssh host keys if the image (lower)
// has none.
func writeSeed(dir, lower string) ([]string, error) {
	units := filepath.Join(dir, "etc/systemd/system")
	if err := os.MkdirAll(filepath.Join(units, "sockets.target.wants"), 0o755); err != nil {
		return nil, err
	}
	masked := maskedUnits(lower)
	for _, u := range masked {
		if err := os.Symlink("/dev/null", filepath.Join(units, u)); err != nil {
			return nil, fmt.Errorf("mask %s: %w", u, err)
		}
	}
	files := map[string]string{
		filepath.Join(units, "ssh.socket"):   sshSocket,
		filepath.Join(units, "ssh@.service"): sshService,
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	files[filepath.Join(dir, "etc/machine-id")] = hex.EncodeToString(id) + "\n"
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.Symlink("/etc/systemd/system/ssh.socket", filepath.Join(units, "sockets.target.wants/ssh.socket")); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(lower, "etc/ssh/ssh_host_ed25519_key")); err != nil {
		if err := os.MkdirAll(filepath.Join(dir, "etc/ssh"), 0o755); err != nil {
			return nil, err
		}
		if out, err := exec.Command("ssh-keygen", "-A", "-f", dir).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen -A: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	return masked, nil
}
