package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// handoffMagic starts an encoded Handoff and names its format version.
const handoffMagic = "FDTOPST1"

// maxHandoffSize bounds the state memfd a new instance is willing to read.
const maxHandoffSize = 64 << 20

// Handoff is the state one instance of the handoff server passes to the
// next through a memfd in the file descriptor store (FDNAME=state). The
// connections themselves are stored separately, as FDNAME=conn-<ID>.
type Handoff struct {
	// NextID is the id the next new connection gets.
	NextID uint64
	// Conns holds the state of every connection handed over.
	Conns []ConnState
}

// ConnState is the state of one handed-over client connection.
type ConnState struct {
	// ID names the connection; its store entry is "conn-<ID>".
	ID uint64
	// Count is the number of lines answered so far.
	Count uint64
	// Pending holds bytes read from the socket but not yet processed
	// (an incomplete line).
	Pending []byte
	// Unsent holds reply bytes produced but not yet written.
	Unsent []byte
}

// MarshalBinary encodes h: the magic, NextID, the connection count, then
// per connection ID, Count and the two length-prefixed buffers, all
// integers as uvarints.
func (h Handoff) MarshalBinary() ([]byte, error) {
	b := []byte(handoffMagic)
	b = binary.AppendUvarint(b, h.NextID)
	b = binary.AppendUvarint(b, uint64(len(h.Conns)))
	for _, c := range h.Conns {
		b = binary.AppendUvarint(b, c.ID)
		b = binary.AppendUvarint(b, c.Count)
		b = binary.AppendUvarint(b, uint64(len(c.Pending)))
		b = append(b, c.Pending...)
		b = binary.AppendUvarint(b, uint64(len(c.Unsent)))
		b = append(b, c.Unsent...)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary produced. It rejects
// truncated or trailing data, zero and duplicate ids.
func (h *Handoff) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if len(data) < len(handoffMagic) || string(data[:len(handoffMagic)]) != handoffMagic {
		return errors.New("decode handoff state: bad magic")
	}
	d.b = d.b[len(handoffMagic):]
	var out Handoff
	out.NextID = d.uvarint("next id")
	n := d.uvarint("connection count")
	// Each entry takes at least 4 bytes: refuse counts the data cannot hold.
	if d.err == nil && n > uint64(len(d.b)/4) {
		return fmt.Errorf("decode handoff state: %d connections in %d bytes", n, len(d.b))
	}
	seen := make(map[uint64]bool)
	for i := uint64(0); i < n && d.err == nil; i++ {
		var c ConnState
		c.ID = d.uvarint("connection id")
		c.Count = d.uvarint("message count")
		c.Pending = d.bytes("pending input")
		c.Unsent = d.bytes("unsent output")
		if d.err != nil {
			break
		}
		if c.ID == 0 || seen[c.ID] {
			return fmt.Errorf("decode handoff state: connection %d: zero or duplicate id %d", i, c.ID)
		}
		seen[c.ID] = true
		out.Conns = append(out.Conns, c)
	}
	if d.err != nil {
		return fmt.Errorf("decode handoff state: %w", d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("decode handoff state: %d trailing bytes", len(d.b))
	}
	*h = out
	return nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("read %s: truncated or overlong varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("read %s: %d bytes announced, %d left", what, n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := slices.Clone(d.b[:n])
	d.b = d.b[n:]
	return v
}

// writeMemfd returns a memfd named name holding data.
func writeMemfd(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create memfd %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %d bytes to memfd %q: %w", len(data), name, err)
	}
	return f, nil
}

// readStateFile reads all of f from offset 0 (the offset is shared with the
// writer's and the manager's copies, so it is not used).
func readStateFile(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat state file %s: %w", f.Name(), err)
	}
	if st.Size() > maxHandoffSize {
		return nil, fmt.Errorf("state file %s: %d bytes, at most %d", f.Name(), st.Size(), maxHandoffSize)
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w", f.Name(), err)
	}
	return data, nil
}
