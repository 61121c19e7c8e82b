package dbusclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/godbus/dbus/v5"
)

func encodeReply(t testing.TB, order binary.ByteOrder, typ dbus.Type, body ...any) []byte {
	t.Helper()
	msg := &dbus.Message{Type: typ, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(7)),
		dbus.FieldSender:      dbus.MakeVariant(":1.5"),
		dbus.FieldDestination: dbus.MakeVariant(":1.9"),
	}, Body: body}
	if typ == dbus.TypeError {
		msg.Headers[dbus.FieldErrorName] = dbus.MakeVariant("org.freedesktop.systemd1.NoSuchUnit")
	}
	if len(body) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, order); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	order.PutUint32(b[8:], 3) // godbus leaves the serial 0
	return b
}

// TestWireDecoder checks the fast reply decoder against godbus's own on
// the replies systemd sends.
func TestWireDecoder(t *testing.T) {
	type pair struct{ A, B string }
	tests := []struct {
		name string
		typ  dbus.Type
		body []any
	}{
		{"u", dbus.TypeMethodReply, []any{dbus.MakeVariant(uint32(42))}},
		{"b", dbus.TypeMethodReply, []any{dbus.MakeVariant(true)}},
		{"s", dbus.TypeMethodReply, []any{dbus.MakeVariant("notify")}},
		{"t", dbus.TypeMethodReply, []any{dbus.MakeVariant(uint64(1700000000123456))}},
		{"as", dbus.TypeMethodReply, []any{dbus.MakeVariant([]string{"a.service", "b.service"})}},
		{"empty as", dbus.TypeMethodReply, []any{dbus.MakeVariant([]string{})}},
		{"a(ss)", dbus.TypeMethodReply, []any{dbus.MakeVariant([]pair{{"Stream", "127.0.0.1:80"}, {"FIFO", "/run/f"}})}},
		{"empty a(ss)", dbus.TypeMethodReply, []any{dbus.MakeVariant([]pair{})}},
		{"a(sus)", dbus.TypeMethodReply, []any{[]struct {
			C string
			P uint32
			L string
		}{{"/x", 12, "sleep 1"}, {"/y", 13, ""}}}},
		{"a(ssssssouso)", dbus.TypeMethodReply, []any{[]unitStatus{{Name: "a.socket", Description: "A", LoadState: "loaded",
			ActiveState: "active", SubState: "listening", Path: UnitPath("a.socket"), JobID: 3, JobType: "start", JobPath: "/org/freedesktop/systemd1/job/3"}}}},
		{"a(suuutuusu)", dbus.TypeMethodReply, []any{[]rawStoreEntry{{"peer", 49663, 0, 9, 4235175, 0, 0, "socket:[4235175]", 2}}}},
		{"error", dbus.TypeError, []any{"Unit x.service not loaded."}},
		{"no body", dbus.TypeMethodReply, nil},
		{"a{sv} (slow path)", dbus.TypeMethodReply, []any{map[string]dbus.Variant{"MainPID": dbus.MakeVariant(uint32(1))}}},
	}
	for _, tt := range tests {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			t.Run(tt.name+"/"+order.String(), func(t *testing.T) {
				raw := encodeReply(t, order, tt.typ, tt.body...)
				want, err := dbus.DecodeMessage(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				// Two messages back to back, to check framing.
				r := bufio.NewReader(bytes.NewReader(append(raw, raw...)))
				var buf []byte
				for range 2 {
					var f frame
					f, buf, err = readFrame(r, buf)
					if err != nil {
						t.Fatal(err)
					}
					if f.typ != tt.typ || f.replySerial != 7 {
						t.Errorf("frame type %v serial %d", f.typ, f.replySerial)
					}
					if tt.typ == dbus.TypeError && f.errName != "org.freedesktop.systemd1.NoSuchUnit" {
						t.Errorf("error name %q", f.errName)
					}
					got, err := f.body()
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != len(want.Body) || (len(got) > 0 && !reflect.DeepEqual(got, want.Body)) {
						t.Errorf("body:\n got %#v\nwant %#v", got, want.Body)
					}
				}
			})
		}
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(encodeReply(f, binary.LittleEndian, dbus.TypeMethodReply, dbus.MakeVariant([]string{"a"})))
	f.Add(encodeReply(f, binary.BigEndian, dbus.TypeError, "x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, _, err := readFrame(bufio.NewReader(bytes.NewReader(b)), nil)
		if err == nil {
			_, _ = fr.body() // must not panic
		}
	})
}

// TestAppendCall checks the call encoder against godbus's decoder.
func TestAppendCall(t *testing.T) {
	tests := []struct {
		name string
		args []any
	}{
		{"Get", []any{ifaceSocket, "Listen"}},
		{"ListUnitsByPatterns", []any{[]string{}, []string{"*.socket", "a.service"}}},
		{"no args", nil},
		{"odd lengths", []any{"a", []string{"bc", "d"}, "efg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{1, 2, 3} // a message need not start 8-aligned in the buffer
			b, ok := appendCall(prefix, UnitPath("a.socket"), busName, ifaceProps, "Get", tt.args, 99)
			if !ok {
				t.Fatal("not encoded")
			}
			msg, err := dbus.DecodeMessage(bytes.NewReader(b[3:]))
			if err != nil {
				t.Fatal(err)
			}
			if msg.Serial() != 99 || msg.Type != dbus.TypeMethodCall {
				t.Errorf("serial %d type %v", msg.Serial(), msg.Type)
			}
			if p := msg.Headers[dbus.FieldPath].Value(); p != UnitPath("a.socket") {
				t.Errorf("path %v", p)
			}
			if m := msg.Headers[dbus.FieldMember].Value(); m != "Get" {
				t.Errorf("member %v", m)
			}
			if len(msg.Body) != len(tt.args) || (len(tt.args) > 0 && !reflect.DeepEqual(msg.Body, tt.args)) {
				t.Errorf("body %#v, want %#v", msg.Body, tt.args)
			}
		})
	}
	if _, ok := appendCall(nil, "/", busName, ifaceProps, "Set", []any{uint32(1)}, 1); ok {
		t.Error("a uint32 argument was encoded by the string-only encoder")
	}
}
