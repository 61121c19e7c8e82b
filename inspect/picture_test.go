package inspect

import (
	"testing"
	"time"

	"github.com/fdtop/fdtop/dbusclient"
)

func pictureFixture() *Snapshot {
	return &Snapshot{
		Time: time.Unix(100, 0),
		Sockets: []SocketUnit{
			{Unit: "a.socket", ActiveState: "active", SubState: "listening", NAccepted: 3},
			{Unit: "b.socket", ActiveState: "active", SubState: "listening"},
		},
		Services: []Service{
			{Unit: "a.service", ActiveState: "active", SubState: "running", MainPID: 10, FDStoreCount: 5},
			{Unit: "b.service", ActiveState: "active", SubState: "running", MainPID: 20},
		},
		Warnings: []Warning{{Unit: "a.service", Code: "old"}, {Unit: "b.service", Code: "x"}},
	}
}

func TestMergeUnits(t *testing.T) {
	base := pictureFixture()
	fresh := pictureFixture()
	fresh.Time = time.Unix(101, 0)
	fresh.Services[0].FDStoreCount = 9
	fresh.Services[1].MainPID = 999 // not asked for: ignored
	fresh.Services = append(fresh.Services, Service{Unit: "a0.service"})
	fresh.Warnings = []Warning{{Unit: "a.service", Code: "new"}}
	got := MergeUnits(base, fresh, []string{"a.service", "a.socket", "a0.service"})
	if got.Services[0].FDStoreCount != 9 {
		t.Error("a unit asked for was not taken from the fresh scan")
	}
	if got.Services[2].MainPID != 20 {
		t.Error("a unit not asked for was taken from the fresh scan")
	}
	if got.Services[1].Unit != "a0.service" {
		t.Errorf("a new unit was not put in order: %v", got.Services)
	}
	if !got.Time.Equal(fresh.Time) {
		t.Error("the picture's time is not the fresh scan's")
	}
	var codes []string
	for _, w := range got.Warnings {
		codes = append(codes, w.Code)
	}
	if len(codes) != 2 || codes[0] != "x" || codes[1] != "new" {
		t.Errorf("warnings %v, want x,new", codes)
	}
	if base.Services[0].FDStoreCount != 5 || len(base.Services) != 2 {
		t.Error("the base picture was modified")
	}
}

func TestApplySignal(t *testing.T) {
	str := func(s string) *string { return &s }
	u32 := func(n uint32) *uint32 { return &n }
	tests := []struct {
		name  string
		ev    dbusclient.Event
		check func(*Snapshot) bool
	}{
		{"state and main pid", dbusclient.UnitChanged{Unit: "a.service", Changes: dbusclient.UnitChanges{ActiveState: str("deactivating"), SubState: str("stop-sigterm"), MainPID: u32(0)}},
			func(s *Snapshot) bool {
				return s.Services[0].ActiveState == "deactivating" && s.Services[0].SubState == "stop-sigterm" && s.Services[0].MainPID == 0
			}},
		{"socket state", dbusclient.UnitChanged{Unit: "b.socket", Changes: dbusclient.UnitChanges{SubState: str("running")}},
			func(s *Snapshot) bool {
				return s.Sockets[1].SubState == "running" && s.Sockets[1].ActiveState == "active"
			}},
		{"polled counters of a socket", dbusclient.CountersChanged{Unit: "a.socket", Counters: dbusclient.Counters{SocketCounters: dbusclient.SocketCounters{NConnections: 2, NAccepted: 7, NRefused: 1}}},
			func(s *Snapshot) bool {
				return s.Sockets[0].NConnections == 2 && s.Sockets[0].NAccepted == 7 && s.Sockets[0].NRefused == 1
			}},
		{"polled store count of a service", dbusclient.CountersChanged{Unit: "b.service", Counters: dbusclient.Counters{NFileDescriptorStore: 4}},
			func(s *Snapshot) bool { return s.Services[1].FDStoreCount == 4 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := pictureFixture()
			got := ApplySignal(base, tt.ev)
			if got == base {
				t.Fatal("the picture was returned unchanged")
			}
			if !tt.check(got) {
				t.Errorf("picture after %T: sockets %+v services %+v", tt.ev, got.Sockets, got.Services)
			}
			if fresh := pictureFixture(); !sameServiceHead(base.Services[0], fresh.Services[0]) || base.Sockets[0].NAccepted != 3 || base.Services[1].FDStoreCount != 0 {
				t.Error("the input picture was modified")
			}
		})
	}
	base := pictureFixture()
	if got := ApplySignal(base, dbusclient.UnitChanged{Unit: "other.service", Changes: dbusclient.UnitChanges{ActiveState: str("failed")}}); got != base {
		t.Error("a signal about a unit not in the picture copied it")
	}
	if got := ApplySignal(base, dbusclient.UnitChanged{Unit: "a.service", Changes: dbusclient.UnitChanges{ActiveState: str("active")}}); got != base {
		t.Error("a signal that changes nothing copied the picture")
	}
}
