package dbusclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"strings"
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

// FuzzReadFrame checks framing and decoding of hostile input: a frame
// read without error is exactly the first bytes of the input (the reader
// is left at the next message), and where godbus also accepts the message,
// both agree on the reply serial, the error name and the body.
func FuzzReadFrame(f *testing.F) {
	f.Add(encodeReply(f, binary.LittleEndian, dbus.TypeMethodReply, dbus.MakeVariant([]string{"a"})))
	f.Add(encodeReply(f, binary.BigEndian, dbus.TypeError, "x"))
	f.Add(encodeReply(f, binary.LittleEndian, dbus.TypeMethodReply, []unitStatus{{Name: "a.socket", Path: UnitPath("a.socket"), JobPath: "/"}}))
	f.Add(append(encodeReply(f, binary.LittleEndian, dbus.TypeMethodReply, dbus.MakeVariant(uint32(1))), 'l', 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		fr, _, err := readFrame(r, nil)
		if err != nil {
			return
		}
		n := len(fr.raw)
		if n > len(b) || !bytes.Equal(fr.raw, b[:n]) {
			t.Fatalf("frame of %d bytes is not the input's first %d bytes", n, n)
		}
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(rest, b[n:]) {
			t.Fatalf("reader left %d bytes after the frame, want %d", len(rest), len(b)-n)
		}
		got, err := fr.body()
		want, werr := dbus.DecodeMessage(bytes.NewReader(fr.raw))
		if err != nil || werr != nil {
			return
		}
		if rs, ok := want.Headers[dbus.FieldReplySerial].Value().(uint32); ok && rs != fr.replySerial {
			t.Errorf("reply serial %d, godbus %d", fr.replySerial, rs)
		}
		if en, ok := want.Headers[dbus.FieldErrorName].Value().(string); ok && en != fr.errName {
			t.Errorf("error name %q, godbus %q", fr.errName, en)
		}
		if len(got) != len(want.Body) || (len(got) > 0 && !reflect.DeepEqual(got, want.Body)) {
			t.Errorf("body:\n got %#v\nwant %#v", got, want.Body)
		}
	})
}

// FuzzAuthExternal feeds the client side of the auth exchange any server
// answer: it succeeds exactly when the first line (within the reader's
// buffer) starts with "OK ", then queues BEGIN and leaves the reader at
// the byte after that line; otherwise it fails without sending BEGIN.
func FuzzAuthExternal(f *testing.F) {
	const bufSize = 64
	for _, s := range []string{
		"OK 1234deadbeef\r\n",
		"OK 1234\r\nl\x02\x01\x01",
		"REJECTED EXTERNAL\r\n",
		"OK",
		"DATA\r\n",
		"",
		strings.Repeat("x", bufSize+1) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		r := bufio.NewReaderSize(bytes.NewReader(in), bufSize)
		w := bufio.NewWriter(&out)
		err := authExternal(r, w, 1000)
		if ferr := w.Flush(); ferr != nil {
			t.Fatal(ferr)
		}
		auth := "\x00AUTH EXTERNAL 31303030\r\n" // "1000" in hex
		i := bytes.IndexByte(in, '\n')
		ok := i >= 0 && i < bufSize && bytes.HasPrefix(in, []byte("OK "))
		if !ok {
			if err == nil {
				t.Fatalf("answer %q accepted", in)
			}
			if out.String() != auth {
				t.Fatalf("after a refused answer sent %q, want %q", out.String(), auth)
			}
			return
		}
		if err != nil {
			t.Fatalf("answer %q: %v", in, err)
		}
		if out.String() != auth+"BEGIN\r\n" {
			t.Fatalf("sent %q, want AUTH then BEGIN", out.String())
		}
		if rest, _ := io.ReadAll(r); !bytes.Equal(rest, in[i+1:]) {
			t.Fatalf("reader left %q after the answer, want %q", rest, in[i+1:])
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
