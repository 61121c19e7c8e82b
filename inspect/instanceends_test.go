package inspect

import (
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// TestInstanceConnectionByEnds: on Debian 13 (OpenSSH 10) the instance's
// main process, sshd-session, holds the connection at fds 6 and 7, not 0
// or 3: the connection is the one kernel socket with the ends the manager
// named the instance by (old form and the 258+ cookie form alike, the
// cookie unknown to this scan), with its holders.
func TestInstanceConnectionByEnds(t *testing.T) {
	for _, name := range []string{"ssh@0-127.0.0.1:22-127.0.0.1:50584.service", "ssh@0-26594-127.0.0.1:22-127.0.0.1:50584.service"} {
		t.Run(name, func(t *testing.T) {
			const conn, other, sshd = 7001, 7002, 116
			scan := &procfs.Scan{
				Processes: []procfs.Process{
					{PID: 1, Comm: "systemd", Unit: "init.scope", FDs: []procfs.FD{sockFD(10, conn)}},
					{PID: sshd, Comm: "sshd-session", Unit: "session-c1.scope", FDs: []procfs.FD{{Num: 0, Kind: procfs.KindDevice, Name: "/dev/null"}, sockFD(6, conn), sockFD(7, conn)}},
				},
				Sockets: map[uint64]procfs.Socket{
					conn:  tcp(conn, "[::ffff:127.0.0.1]:22", "[::ffff:127.0.0.1]:50584", procfs.StateEstablished, 0),
					other: tcp(other, "[::ffff:127.0.0.1]:22", "[::ffff:127.0.0.1]:50585", procfs.StateEstablished, 0),
				},
			}
			state := &dbusclient.State{
				Sockets: []dbusclient.Socket{{UnitState: dbusclient.UnitState{Name: "ssh.socket", ActiveState: "active", SubState: "listening"},
					Accept: true, Template: "ssh@.service", Instances: []string{name}}},
				Services: []dbusclient.Service{{UnitState: dbusclient.UnitState{Name: name, ActiveState: "active", SubState: "running"}, Template: "ssh@.service", MainPID: sshd}},
			}
			s := Join(JoinInput{Time: time.Unix(0, 0), Manager: Manager{Scope: "system"}, ManagerPIDs: []int{1}, State: state, Scan: scan, Stores: map[string]dbusclient.FDStore{}})
			if len(s.Sockets) != 1 || len(s.Sockets[0].Instances) != 1 {
				t.Fatalf("sockets %+v", s.Sockets)
			}
			in := s.Sockets[0].Instances[0]
			if in.Inode != conn || len(in.Holders) != 2 || in.Holders[1].PID != sshd || in.Holders[1].Unit != "session-c1.scope" {
				t.Errorf("instance %+v: want inode %d held by the manager and sshd-session in session-c1.scope", in, conn)
			}
		})
	}
}
