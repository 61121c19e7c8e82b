package ui

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
	"github.com/fdtop/fdtop/inspect"
)

// TestDetailSocketSettings: the socket detail shows the settings after
// 254 that the manager has (nothing where it has none, as on 252), words
// for SubState deferred, and the service's LISTEN_PIDFDID where it was set.
func TestDetailSocketSettings(t *testing.T) {
	u64 := func(v uint64) *uint64 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	no, yes := false, true
	svc := &inspect.Service{Unit: "k.service", ActiveState: "active", MainPID: 9,
		Passed: []inspect.PassedFD{{FD: 3, Name: "k.socket", Kind: "tcp-listen"}}}
	for _, tt := range []struct {
		name string
		sock inspect.SocketUnit
		pid  uint64
		want []string
		not  []string
	}{
		{"252", inspect.SocketUnit{SubState: "running"}, 0, nil, []string{"poll limit", "PassFileDescriptorsToExec", "DeferTrigger", "LISTEN_PIDFDID"}},
		{"257", inspect.SocketUnit{SubState: "running", PollLimitIntervalUSec: u64(2000000), PollLimitBurst: u32(150), PassFDsToExec: &no}, 0,
			[]string{"poll limit 150 per 2s · PassFileDescriptorsToExec=no"}, []string{"DeferTrigger", "PassPIDFD", "LISTEN_PIDFDID"}},
		{"262 deferred", inspect.SocketUnit{SubState: "deferred", PollLimitIntervalUSec: u64(3000000), PollLimitBurst: u32(7), PassFDsToExec: &yes,
			DeferTrigger: "yes", DeferTriggerMaxUSec: u64(40000000), PassPIDFD: &yes, AcceptFDs: &no}, 183706,
			[]string{"active (deferred)", "deferred: a client is waiting, but starting k.service now would stop a unit it conflicts with",
				"poll limit 7 per 3s · PassFileDescriptorsToExec=yes · DeferTrigger=yes (at most 40s) · PassPIDFD=yes · AcceptFileDescriptors=no",
				"LISTEN_PIDFDID=183706"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock := tt.sock
			sock.Unit, sock.ActiveState, sock.Service = "k.socket", "active", "k.service"
			s := *svc
			s.ListenPIDFDID = tt.pid
			for _, sel := range []string{"k.socket", "k.service"} {
				d := newDetailModel(DefaultStyles())
				d.SetSize(200, 80)
				d.SetData(detailData{Group: &unitGroup{Sockets: []*inspect.SocketUnit{&sock}, Service: &s, Name: "k.service"}, Selected: sel})
				v := ansi.Strip(d.View())
				for _, w := range tt.want {
					if !strings.Contains(v, w) {
						t.Errorf("%s selected: detail lacks %q:\n%s", sel, w, v)
					}
				}
				for _, n := range tt.not {
					if strings.Contains(v, n) {
						t.Errorf("%s selected: detail says %q:\n%s", sel, n, v)
					}
				}
			}
		})
	}
}

// TestListDeferredSocket: a deferred socket's row says so and is drawn
// between states, not as a plain active one.
func TestListDeferredSocket(t *testing.T) {
	l := listModel{st: DefaultStyles()}
	g := &unitGroup{}
	for _, tt := range []struct {
		sub, glyph, addrs string
	}{
		{"listening", "●", "127.0.0.1:80"},
		{"deferred", "◐", "127.0.0.1:80 (deferred)"},
	} {
		r := l.socketRow(g, &inspect.SocketUnit{Unit: "k.socket", ActiveState: "active", SubState: tt.sub,
			Listeners: []inspect.Listener{{Type: "Stream", Address: "127.0.0.1:80"}}})
		if r.glyph != tt.glyph || r.addrs != tt.addrs {
			t.Errorf("%s: row glyph %q addrs %q, want %q %q", tt.sub, r.glyph, r.addrs, tt.glyph, tt.addrs)
		}
	}
}

// TestPackPhrases: settings fill the detail's width a phrase at a time.
func TestPackPhrases(t *testing.T) {
	ph := []string{"poll limit 7 per 3s", "PassPIDFD=yes", "AcceptFileDescriptors=no"}
	for _, tt := range []struct {
		w    int
		want []string
	}{
		{200, []string{"poll limit 7 per 3s · PassPIDFD=yes · AcceptFileDescriptors=no"}},
		{40, []string{"poll limit 7 per 3s · PassPIDFD=yes", "AcceptFileDescriptors=no"}},
		{10, []string{"poll limit 7 per 3s", "PassPIDFD=yes", "AcceptFileDescriptors=no"}},
		{0, []string{"poll limit 7 per 3s", "PassPIDFD=yes", "AcceptFileDescriptors=no"}},
	} {
		if got := packPhrases(ph, " · ", tt.w); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("width %d: %q, want %q", tt.w, got, tt.want)
		}
	}
	if got := packPhrases(nil, " · ", 80); got != nil {
		t.Errorf("no phrases: %q", got)
	}
}
