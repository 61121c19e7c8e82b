package dbusclient

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/godbus/dbus/v5"
)

// This file reads replies off the wire faster than godbus's DecodeMessage,
// which allocates a string converter and goes through reflection for every
// message: for the few signatures systemd's replies use, values are built
// directly, in the same Go types godbus produces, so dbus.Store still
// applies. Anything else falls back to DecodeMessage on the same bytes.

// frame is one message as read off the wire.
type frame struct {
	typ         dbus.Type
	order       binary.ByteOrder
	replySerial uint32
	errName     string
	sig         string
	raw         []byte // the whole message
	bodyStart   int
}

// maxMessage is the D-Bus limit on a message's size.
const maxMessage = 1 << 27

// readFrame reads one whole message; buf is reused if big enough.
func readFrame(r *bufio.Reader, buf []byte) (frame, []byte, error) {
	var f frame
	head, err := r.Peek(16)
	if err != nil {
		return f, buf, err
	}
	switch head[0] {
	case 'l':
		f.order = binary.LittleEndian
	case 'B':
		f.order = binary.BigEndian
	default:
		return f, buf, errors.New("invalid byte order in message")
	}
	f.typ = dbus.Type(head[1])
	bodyLen := f.order.Uint32(head[4:8])
	fieldsLen := f.order.Uint32(head[12:16])
	f.bodyStart = int(align(16+uint64(fieldsLen), 8))
	total := uint64(f.bodyStart) + uint64(bodyLen)
	if total > maxMessage {
		return f, buf, fmt.Errorf("message of %d bytes is too long", total)
	}
	f.raw, buf, err = readN(r, buf, int(total))
	if err != nil {
		return f, buf, err
	}
	d := wireDecoder{b: f.raw, order: f.order, pos: 16}
	end := 16 + int(fieldsLen)
	for d.pos < end && d.err == nil {
		d.align(8)
		code := d.byte1()
		sig := d.signature()
		switch {
		case code == 4 && sig == "s":
			f.errName = d.str()
		case code == 5 && sig == "u":
			f.replySerial = d.u32()
		case code == 8 && sig == "g":
			f.sig = d.signature()
		default:
			d.skip(sig)
		}
	}
	if d.err != nil {
		return f, buf, fmt.Errorf("bad message header: %w", d.err)
	}
	return f, buf, nil
}

// readN reads n bytes into buf if it is big enough, else into a buffer
// grown as the bytes arrive (1 MiB at a time), so that a header claiming a
// huge message costs what was actually sent, not the claim. It returns the
// bytes and the buffer to reuse.
func readN(r *bufio.Reader, buf []byte, n int) ([]byte, []byte, error) {
	if cap(buf) >= n {
		_, err := io.ReadFull(r, buf[:n])
		return buf[:n], buf, err
	}
	b := buf[:0]
	for len(b) < n {
		chunk := min(n-len(b), 1<<20)
		b = slices.Grow(b, chunk)
		m, err := io.ReadFull(r, b[len(b):len(b)+chunk])
		b = b[:len(b)+m]
		if err != nil {
			return nil, b, err
		}
	}
	return b, b, nil
}

// body decodes the message body, fast where it can.
func (f frame) body() ([]any, error) {
	d := wireDecoder{b: f.raw, order: f.order, pos: f.bodyStart}
	var out []any
	for sig := f.sig; sig != "" && d.err == nil; {
		n := completeTypeLen(sig)
		if n <= 0 {
			return nil, fmt.Errorf("bad signature %q", f.sig)
		}
		out = append(out, d.value(sig[:n]))
		sig = sig[n:]
	}
	if errors.Is(d.err, errSlowPath) {
		msg, err := dbus.DecodeMessage(bytes.NewReader(f.raw))
		if err != nil {
			return nil, err
		}
		return msg.Body, nil
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

var errSlowPath = errors.New("signature left to godbus")

func align(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// completeTypeLen returns the length of the first complete type in sig.
func completeTypeLen(sig string) int {
	if sig == "" {
		return 0
	}
	switch sig[0] {
	case 'a':
		n := completeTypeLen(sig[1:])
		if n <= 0 {
			return n
		}
		return 1 + n
	case '(', '{':
		closer := byte(')')
		if sig[0] == '{' {
			closer = '}'
		}
		i := 1
		for i < len(sig) && sig[i] != closer {
			n := completeTypeLen(sig[i:])
			if n <= 0 {
				return -1
			}
			i += n
		}
		if i >= len(sig) {
			return -1
		}
		return i + 1
	}
	return 1
}

// wireDecoder reads D-Bus marshalled values from b.
type wireDecoder struct {
	b     []byte
	order binary.ByteOrder
	pos   int
	err   error
}

func (d *wireDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *wireDecoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if d.pos+n > len(d.b) || n < 0 {
		d.fail(io.ErrUnexpectedEOF)
		return false
	}
	return true
}

func (d *wireDecoder) align(a int) {
	p := int(align(uint64(d.pos), uint64(a)))
	if p > len(d.b) {
		d.fail(io.ErrUnexpectedEOF)
		return
	}
	d.pos = p
}

func (d *wireDecoder) byte1() byte {
	if !d.need(1) {
		return 0
	}
	d.pos++
	return d.b[d.pos-1]
}

func (d *wireDecoder) u32() uint32 {
	d.align(4)
	if !d.need(4) {
		return 0
	}
	d.pos += 4
	return d.order.Uint32(d.b[d.pos-4:])
}

func (d *wireDecoder) u64() uint64 {
	d.align(8)
	if !d.need(8) {
		return 0
	}
	d.pos += 8
	return d.order.Uint64(d.b[d.pos-8:])
}

func (d *wireDecoder) str() string {
	n := int(d.u32())
	if !d.need(n + 1) {
		return ""
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n + 1
	return s
}

func (d *wireDecoder) signature() string {
	n := int(d.byte1())
	if !d.need(n + 1) {
		return ""
	}
	s := string(d.b[d.pos : d.pos+n])
	d.pos += n + 1
	return s
}

// skip passes over a header field value of a basic type.
func (d *wireDecoder) skip(sig string) {
	switch sig {
	case "s", "o":
		d.str()
	case "g":
		d.signature()
	case "u":
		d.u32()
	default:
		d.fail(fmt.Errorf("unexpected header field type %q", sig))
	}
}

var sigCache sync.Map // string -> dbus.Signature

func parsedSig(s string) (dbus.Signature, error) {
	if v, ok := sigCache.Load(s); ok {
		return v.(dbus.Signature), nil
	}
	sig, err := dbus.ParseSignature(s)
	if err != nil {
		return sig, err
	}
	sigCache.Store(s, sig)
	return sig, nil
}

// value decodes one complete type, in the Go types godbus uses.
func (d *wireDecoder) value(sig string) any {
	if d.err != nil {
		return nil
	}
	if sig == "" {
		d.fail(errors.New("empty signature"))
		return nil
	}
	switch sig {
	case "b":
		return d.u32() != 0
	case "u":
		return d.u32()
	case "i":
		return int32(d.u32())
	case "t":
		return d.u64()
	case "x":
		return int64(d.u64())
	case "s":
		return d.str()
	case "o":
		return dbus.ObjectPath(d.str())
	case "g":
		return dbus.Signature{} // not used by systemd's replies here
	case "y":
		return d.byte1()
	case "v":
		inner := d.signature()
		if inner == "" || completeTypeLen(inner) != len(inner) {
			d.fail(fmt.Errorf("bad variant signature %q", inner))
			return nil
		}
		v := d.value(inner)
		s, err := parsedSig(inner)
		if err != nil {
			d.fail(err)
			return nil
		}
		return dbus.MakeVariantWithSignature(v, s)
	case "as":
		n := int(d.u32())
		end := d.pos + n
		out := []string{}
		for d.pos < end && d.err == nil {
			out = append(out, d.str())
		}
		if d.pos != end {
			d.fail(errors.New("array length mismatch"))
		}
		return out
	}
	if len(sig) > 2 && sig[0] == 'a' && sig[1] == '(' {
		n := int(d.u32())
		d.align(8)
		end := d.pos + n
		out := [][]any{}
		for d.pos < end && d.err == nil {
			start := d.pos
			fields, _ := d.value(sig[1:]).([]any)
			if d.pos == start {
				d.fail(errors.New("empty struct in array"))
			}
			out = append(out, fields)
		}
		if d.err == nil && d.pos != end {
			d.fail(errors.New("array length mismatch"))
		}
		return out
	}
	if sig[0] == '(' {
		d.align(8)
		var fields []any
		for inner := sig[1 : len(sig)-1]; inner != "" && d.err == nil; {
			n := completeTypeLen(inner)
			fields = append(fields, d.value(inner[:n]))
			inner = inner[n:]
		}
		if d.err != nil {
			return []any(nil)
		}
		return fields
	}
	d.fail(errSlowPath)
	return nil
}

// wireEncoder appends D-Bus marshalled values, little-endian, with
// alignment counted from the start of the message (the body starts 8-byte
// aligned, so that is also alignment within the body).
type wireEncoder struct {
	b    []byte
	base int // where the message starts in b
}

func (e *wireEncoder) align(a int) {
	for (len(e.b)-e.base)%a != 0 {
		e.b = append(e.b, 0)
	}
}

func (e *wireEncoder) u32(v uint32) {
	e.align(4)
	e.b = binary.LittleEndian.AppendUint32(e.b, v)
}

func (e *wireEncoder) str(s string) {
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
}

func (e *wireEncoder) sig(s string) {
	e.b = append(e.b, byte(len(s)))
	e.b = append(e.b, s...)
	e.b = append(e.b, 0)
}

// field appends a header field whose value is a string-like type.
func (e *wireEncoder) field(code byte, typ byte, v string) {
	e.align(8)
	e.b = append(e.b, code, 1, typ, 0)
	if typ == 'g' {
		e.sig(v)
	} else {
		e.str(v)
	}
}

// appendCall marshals a method call whose arguments are all strings or
// string arrays; ok is false for other arguments.
func appendCall(b []byte, path dbus.ObjectPath, dest, iface, member string, args []any, serial uint32) (_ []byte, ok bool) {
	sig := make([]byte, 0, 8)
	for _, a := range args {
		switch a.(type) {
		case string:
			sig = append(sig, 's')
		case []string:
			sig = append(sig, 'a', 's')
		default:
			return b, false
		}
	}
	base := len(b)
	e := wireEncoder{b: b, base: base}
	e.b = append(e.b, 'l', byte(dbus.TypeMethodCall), 0, 1, 0, 0, 0, 0)
	e.b = binary.LittleEndian.AppendUint32(e.b, serial)
	e.b = append(e.b, 0, 0, 0, 0) // header fields' length
	fieldsStart := len(e.b)
	e.field(byte(dbus.FieldPath), 'o', string(path))
	e.field(byte(dbus.FieldDestination), 's', dest)
	e.field(byte(dbus.FieldInterface), 's', iface)
	e.field(byte(dbus.FieldMember), 's', member)
	if len(sig) > 0 {
		e.field(byte(dbus.FieldSignature), 'g', string(sig))
	}
	binary.LittleEndian.PutUint32(e.b[base+12:], uint32(len(e.b)-fieldsStart))
	e.align(8)
	bodyStart := len(e.b)
	for _, a := range args {
		switch v := a.(type) {
		case string:
			e.str(v)
		case []string:
			e.u32(0)
			lenAt := len(e.b) - 4
			elems := len(e.b)
			for _, s := range v {
				e.str(s)
			}
			binary.LittleEndian.PutUint32(e.b[lenAt:], uint32(len(e.b)-elems))
		}
	}
	binary.LittleEndian.PutUint32(e.b[base+4:], uint32(len(e.b)-bodyStart))
	return e.b, true
}
