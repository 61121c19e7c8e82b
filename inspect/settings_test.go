package inspect

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

func u64p(v uint64) *uint64 { return &v }
func u32p(v uint32) *uint32 { return &v }
func boolp(v bool) *bool    { return &v }

// TestSocketSettingsWords: the words of the settings after 254, and
// nothing for a setting the manager does not have.
func TestSocketSettingsWords(t *testing.T) {
	tests := []struct {
		name string
		su   SocketUnit
		want []string
	}{
		{"252: none known", SocketUnit{}, nil},
		{"257 defaults", SocketUnit{PollLimitIntervalUSec: u64p(2000000), PollLimitBurst: u32p(150), PassFDsToExec: boolp(false)},
			[]string{"poll limit 150 per 2s", "PassFileDescriptorsToExec=no"}},
		{"262", SocketUnit{PollLimitIntervalUSec: u64p(3000000), PollLimitBurst: u32p(7), PassFDsToExec: boolp(true),
			DeferTrigger: "yes", DeferTriggerMaxUSec: u64p(20000000), PassPIDFD: boolp(true), AcceptFDs: boolp(false)},
			[]string{"poll limit 7 per 3s", "PassFileDescriptorsToExec=yes", "DeferTrigger=yes (at most 20s)", "PassPIDFD=yes", "AcceptFileDescriptors=no"}},
		{"262 defaults", SocketUnit{PollLimitIntervalUSec: u64p(2000000), PollLimitBurst: u32p(150), PassFDsToExec: boolp(false),
			DeferTrigger: "no", DeferTriggerMaxUSec: u64p(dbusclient.USecInfinity), PassPIDFD: boolp(false), AcceptFDs: boolp(true)},
			[]string{"poll limit 150 per 2s", "PassFileDescriptorsToExec=no", "DeferTrigger=no", "PassPIDFD=no", "AcceptFileDescriptors=yes"}},
		{"poll limit off", SocketUnit{PollLimitIntervalUSec: u64p(0), PollLimitBurst: u32p(150)}, []string{"no poll limit"}},
		{"patient, no limit", SocketUnit{DeferTrigger: "patient", DeferTriggerMaxUSec: u64p(dbusclient.USecInfinity)}, []string{"DeferTrigger=patient (at most infinity)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SocketSettings(tt.su); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SocketSettings = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSocketStateNote: deferred is a state with words; a listening socket
// with clients queued and a poll limit gets a hint that says it is one.
func TestSocketStateNote(t *testing.T) {
	q := uint32(3)
	limit := SocketUnit{PollLimitIntervalUSec: u64p(2000000), PollLimitBurst: u32p(150)}
	with := func(su SocketUnit, sub string, ls ...Listener) SocketUnit {
		su.SubState, su.Service, su.Listeners = sub, "x.service", ls
		return su
	}
	tests := []struct {
		name string
		su   SocketUnit
		want string // substring; "" for no note
	}{
		{"deferred", with(SocketUnit{DeferTriggerMaxUSec: u64p(20000000)}, "deferred"), "deferred: a client is waiting, but starting x.service now would stop a unit it conflicts with, so the trigger waits for that unit to stop (at most 20s)"},
		{"listening, queue empty", with(limit, "listening", Listener{State: "LISTEN"}), ""},
		{"listening, queued", with(limit, "listening", Listener{State: "LISTEN", Backlog: 4}), "paused by its poll limit (poll limit 150 per 2s)? systemd does not say"},
		{"datagram queued", with(limit, "listening", Listener{State: "UNCONN", RecvQ: &q}), "paused by its poll limit"},
		{"queued, no poll limit known (252)", with(SocketUnit{}, "listening", Listener{State: "LISTEN", Backlog: 4}), ""},
		{"queued, poll limit off", with(SocketUnit{PollLimitIntervalUSec: u64p(0), PollLimitBurst: u32p(150)}, "listening", Listener{State: "LISTEN", Backlog: 4}), ""},
		{"running: the service has it", with(limit, "running", Listener{State: "LISTEN", Backlog: 4}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SocketStateNote(tt.su)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("SocketStateNote = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTimespan: as systemctl show prints whole units.
func TestTimespan(t *testing.T) {
	for usec, want := range map[uint64]string{
		0: "0", 2000000: "2s", 20000000: "20s", 90000000: "1min 30s", 1500000: "1s 500ms",
		dbusclient.USecInfinity: "infinity", 3600000000: "1h",
	} {
		if got := Timespan(usec); got != want {
			t.Errorf("Timespan(%d) = %q, want %q", usec, got, want)
		}
	}
}

// TestJoinSocketSettings: the settings go into the snapshot as the
// manager gave them, and into its JSON under their names; those the
// manager lacks are left out of the JSON (unknown), never 0 or false.
func TestJoinSocketSettings(t *testing.T) {
	in := fixture()
	in.State.Sockets[0].Settings = dbusclient.SocketSettings{PollLimitIntervalUSec: u64p(2000000), PollLimitBurst: u32p(150),
		PassFDsToExec: boolp(false), DeferTrigger: func() *string { s := "no"; return &s }(), DeferTriggerMaxUSec: u64p(dbusclient.USecInfinity),
		PassPIDFD: boolp(false), AcceptFDs: boolp(true)}
	s := Join(in)
	var got map[string]map[string]any
	b, _ := json.Marshal(s.Sockets)
	var socks []map[string]any
	if err := json.Unmarshal(b, &socks); err != nil {
		t.Fatal(err)
	}
	got = map[string]map[string]any{}
	for _, su := range socks {
		got[su["unit"].(string)] = su
	}
	want := map[string]any{"poll_limit_interval_usec": 2e6, "poll_limit_burst": 150.0, "pass_fds_to_exec": false,
		"defer_trigger": "no", "defer_trigger_max_usec": 18446744073709551615.0, "pass_pidfd": false, "accept_fds": true}
	for k, v := range want {
		if got["web.socket"][k] != v {
			t.Errorf("web.socket %s = %v, want %v", k, got["web.socket"][k], v)
		}
		if x, ok := got["alt.socket"][k]; ok {
			t.Errorf("alt.socket (a manager without it) has %s = %v, want it left out", k, x)
		}
	}
	if !strings.Contains(string(b), `"defer_trigger_max_usec":18446744073709551615`) {
		t.Errorf("infinity is not kept exact: %s", b)
	}
}

// TestJoinSocketOwnExecHolds: with PassFileDescriptorsToExec=yes (256+)
// the socket unit's ExecStartPost= (in the socket unit's own cgroup,
// the socket activating/start-post, as on trixie) holds its listener:
// inside the unit, no leak; and the service's LISTEN_PIDFDID (259+) is
// kept where its main process has it.
func TestJoinSocketOwnExecHolds(t *testing.T) {
	in := fixture()
	const postPID = 500
	in.State.Sockets[0].ActiveState, in.State.Sockets[0].SubState = "activating", "start-post"
	in.Scan.Processes = append(in.Scan.Processes, procfs.Process{PID: postPID, Comm: "sh", UserUnit: "web.socket",
		Handoff: &procfs.HandoffEnv{ListenPID: postPID, ListenFDs: 1, Names: []string{"web.socket"}, ForThisProcess: true},
		FDs:     []procfs.FD{sockFD(3, listIno)}})
	in.Scan.Processes[1].Handoff.PidFDID = 518032
	s := Join(in)
	var web *SocketUnit
	for i := range s.Sockets {
		if s.Sockets[i].Unit == "web.socket" {
			web = &s.Sockets[i]
		}
	}
	if web == nil || len(web.Listeners) != 1 || web.Listeners[0].Inode != listIno {
		t.Fatalf("web.socket in start-post: its listener was not looked for: %+v", web)
	}
	found := false
	for _, h := range web.Listeners[0].Holders {
		if h.PID == postPID {
			found = true
			if h.Outside || h.Unit != "web.socket" {
				t.Errorf("ExecStartPost holder = %+v, want inside web.socket", h)
			}
		}
	}
	if !found {
		t.Errorf("ExecStartPost (pid %d) not among the holders %+v", postPID, web.Listeners[0].Holders)
	}
	for _, w := range s.Warnings {
		if w.Unit == "web.socket" && w.Code == "leaked-listener" && strings.Contains(w.Message, "pid 500") {
			t.Errorf("ExecStartPost called a leak: %+v", w)
		}
	}
	for _, svc := range s.Services {
		if svc.Unit == "web.service" && svc.ListenPIDFDID != 518032 {
			t.Errorf("web.service listen_pidfdid = %d, want 518032", svc.ListenPIDFDID)
		}
	}
}
