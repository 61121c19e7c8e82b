package server

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestHandoffRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		h    Handoff
	}{
		{name: "empty", h: Handoff{}},
		{name: "next id only", h: Handoff{NextID: 42}},
		{name: "connections", h: Handoff{NextID: 1 << 40, Conns: []ConnState{
			{ID: 1, Count: 3},
			{ID: 7, Count: 1 << 63, Pending: []byte("partial li"), Unsent: []byte("123 4 done\n123 5 do")},
			{ID: 9, Pending: []byte("\x00\xff\n"), Unsent: nil},
		}}},
		{name: "large buffer", h: Handoff{NextID: 2, Conns: []ConnState{{ID: 1, Pending: bytes.Repeat([]byte("x"), 70000)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.h.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got Handoff
			if err := got.UnmarshalBinary(data); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(got, tt.h) {
				t.Errorf("round trip (-want +got):\n-%+v\n+%+v", tt.h, got)
			}
		})
	}
}

func TestHandoffDecodeErrors(t *testing.T) {
	valid, _ := Handoff{NextID: 3, Conns: []ConnState{{ID: 1, Count: 2, Pending: []byte("ab")}}}.MarshalBinary()
	dup, _ := Handoff{Conns: []ConnState{{ID: 1}, {ID: 1}}}.MarshalBinary()
	zero, _ := Handoff{Conns: []ConnState{{ID: 0}}}.MarshalBinary()
	tests := []struct {
		name   string
		data   []byte
		errHas string
	}{
		{"empty", nil, "bad magic"},
		{"wrong magic", []byte("FDTOPST2\x00\x00"), "bad magic"},
		{"truncated header", []byte(handoffMagic), "next id"},
		{"truncated entry", valid[:len(valid)-1], "unsent output"},
		{"truncated buffer", valid[:len(valid)-2], "pending input"},
		{"trailing bytes", append(append([]byte{}, valid...), 0), "trailing"},
		{"duplicate id", dup, "duplicate"},
		{"zero id", zero, "zero"},
		{"count beyond data", append([]byte(handoffMagic), 1, 0xff, 0xff, 0x03), "connections in"},
		{"overlong varint", append([]byte(handoffMagic), bytes.Repeat([]byte{0xff}, 11)...), "varint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handoff
			err := h.UnmarshalBinary(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("UnmarshalBinary error = %v, want one containing %q", err, tt.errHas)
			}
		})
	}
}

func FuzzHandoffDecode(f *testing.F) {
	for _, h := range []Handoff{
		{},
		{NextID: 5, Conns: []ConnState{{ID: 1, Count: 2, Pending: []byte("ab"), Unsent: []byte("1 2 x\n")}}},
	} {
		data, _ := h.MarshalBinary()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h Handoff
		if err := h.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var h2 Handoff
		if err := h2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("re-encode changed the state:\n%+v\n%+v", h, h2)
		}
	})
}
