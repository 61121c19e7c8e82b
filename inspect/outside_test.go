package inspect

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// outsideFixture is an sshd that binds its own listener (sshd.service,
// like Debian's ssh.service) with one login whose session process
// pam_systemd moved into session-3.scope, an Accept=yes ssh.socket whose
// instance's process a login moved there too, and the clients' ends.
func outsideFixture(sessionReadable bool) JoinInput {
	const (
		sshdPID, sessPID, instPID, clientPID                  = 10, 20, 21, 30
		lst, sess, clientEnd, acceptLst, instConn, instClient = 2000, 2001, 2002, 2100, 2101, 2102
	)
	procs := []procfs.Process{
		{PID: mgrPID, Comm: "systemd", Unit: "init.scope", FDs: []procfs.FD{sockFD(30, acceptLst), sockFD(31, instConn)}},
		{PID: sshdPID, Comm: "sshd", Unit: "sshd.service", FDs: []procfs.FD{sockFD(3, lst)}},
		{PID: instPID, Comm: "sshd", Unit: "session-4.scope", FDs: []procfs.FD{sockFD(0, instConn), sockFD(3, instConn)}},
		{PID: clientPID, Comm: "ssh", Unit: "client.service", FDs: []procfs.FD{sockFD(3, clientEnd), sockFD(4, instClient)}},
	}
	if sessionReadable {
		procs = append(procs, procfs.Process{PID: sessPID, Comm: "sshd", Unit: "session-3.scope", FDs: []procfs.FD{sockFD(4, sess), sockFD(3, sess)}})
	}
	scan := &procfs.Scan{
		Processes: procs,
		Sockets: map[uint64]procfs.Socket{
			lst:        tcp(lst, "0.0.0.0:2022", "", procfs.StateListen, 0),
			sess:       tcp(sess, "127.0.0.1:2022", "127.0.0.1:40000", procfs.StateEstablished, 0),
			clientEnd:  tcp(clientEnd, "127.0.0.1:40000", "127.0.0.1:2022", procfs.StateEstablished, 0),
			acceptLst:  tcp(acceptLst, "0.0.0.0:22", "", procfs.StateListen, 0),
			instConn:   tcp(instConn, "127.0.0.1:22", "127.0.0.1:50000", procfs.StateEstablished, 0),
			instClient: tcp(instClient, "127.0.0.1:50000", "127.0.0.1:22", procfs.StateEstablished, 0),
		},
	}
	if !sessionReadable {
		scan.Unreadable = 1
	}
	inst := "ssh@0-127.0.0.1:22-127.0.0.1:50000.service"
	state := &dbusclient.State{
		Sockets: []dbusclient.Socket{
			{UnitState: dbusclient.UnitState{Name: "ssh.socket", ActiveState: "active", SubState: "listening"}, Accept: true, Template: "ssh@.service",
				Listen: []dbusclient.Listener{{Type: "Stream", Address: "0.0.0.0:22"}}, Instances: []string{inst}},
		},
		Services: []dbusclient.Service{
			{UnitState: dbusclient.UnitState{Name: "sshd.service", ActiveState: "active", SubState: "running"}, MainPID: sshdPID,
				Processes: []dbusclient.Process{{PID: sshdPID}}},
			{UnitState: dbusclient.UnitState{Name: inst, ActiveState: "active", SubState: "running"}, MainPID: instPID, Template: "ssh@.service"},
		},
	}
	return JoinInput{Manager: Manager{Scope: "system"}, ManagerPIDs: []int{mgrPID}, State: state, Scan: scan}
}

// TestJoinConnectionsHeldOutside: a connection accepted from a service's
// listener that a process outside the service holds (a login session) is
// the service's, named with its holder and that holder's unit; one that no
// readable process holds makes the list unknown, never short in silence.
// An Accept=yes instance's connection names its holders' units.
func TestJoinConnectionsHeldOutside(t *testing.T) {
	for _, tt := range []struct {
		name     string
		readable bool
		want     []Connection
		unknown  bool
	}{
		{"session readable", true, []Connection{{PID: 20, FD: 3, Inode: 2001, Local: "127.0.0.1:2022", Remote: "127.0.0.1:40000", State: "ESTAB",
			Outside: true, Comm: "sshd", Unit: "session-3.scope"}}, false},
		{"session not readable", false, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snap := Join(outsideFixture(tt.readable))
			var svc *Service
			for i := range snap.Services {
				if snap.Services[i].Unit == "sshd.service" {
					svc = &snap.Services[i]
				}
			}
			if svc == nil {
				t.Fatal("sshd.service not in the snapshot")
			}
			if len(svc.Connections) != len(tt.want) {
				t.Fatalf("connections %+v, want %+v", svc.Connections, tt.want)
			}
			for i, c := range svc.Connections {
				if c != tt.want[i] {
					t.Errorf("connection %+v, want %+v", c, tt.want[i])
				}
			}
			if svc.ConnectionsUnknown != tt.unknown {
				t.Errorf("connections_unknown %v, want %v", svc.ConnectionsUnknown, tt.unknown)
			}
			if len(snap.Sockets) != 1 || len(snap.Sockets[0].Instances) != 1 {
				t.Fatalf("sockets %+v", snap.Sockets)
			}
			in := snap.Sockets[0].Instances[0]
			if in.Inode != 2101 || len(in.Holders) != 2 || !in.Holders[0].Manager || in.Holders[1].PID != 21 || in.Holders[1].Unit != "session-4.scope" || in.Holders[1].Outside {
				t.Errorf("instance inode %d holders %+v; want 2101, the manager then pid 21 in session-4.scope", in.Inode, in.Holders)
			}
			var b bytes.Buffer
			if err := WriteTree(&b, snap); err != nil {
				t.Fatal(err)
			}
			tree := b.String()
			for _, want := range []string{"127.0.0.1:50000  held by sshd pid 21 in session-4.scope"} {
				if !strings.Contains(tree, want) {
					t.Errorf("tree lacks %q:\n%s", want, tree)
				}
			}
			if tt.readable && !strings.Contains(tree, "127.0.0.1:40000  ESTAB  recv-q 0 send-q 0  held by sshd pid 20 in session-3.scope") {
				t.Errorf("tree does not name the session's holder:\n%s", tree)
			}
			if !tt.readable && !strings.Contains(tree, "connections: 0 readable; processes not readable may hold more") {
				t.Errorf("tree does not say the connections are unknown:\n%s", tree)
			}
		})
	}
}
