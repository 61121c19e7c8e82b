package dbusclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// call is one method call in a pipelined batch, and its reply.
type call struct {
	path   dbus.ObjectPath
	method string // interface.member
	args   []any

	body []any // the reply
	err  error
}

// getProp returns a Properties.Get call.
func getProp(path dbus.ObjectPath, iface, prop string) *call {
	return &call{path: path, method: ifaceProps + ".Get", args: []any{iface, prop}}
}

// store decodes the reply into dest.
func (c *call) store(dest ...any) error {
	if c.err != nil {
		return c.err
	}
	return dbus.Store(c.body, dest...)
}

// storeProp decodes a Properties.Get reply (one variant) into dest.
func (c *call) storeProp(dest any) error {
	if c.err != nil {
		return c.err
	}
	if len(c.body) != 1 {
		return fmt.Errorf("Properties.Get on %s: %d values in reply", c.path, len(c.body))
	}
	v, ok := c.body[0].(dbus.Variant)
	if !ok {
		return fmt.Errorf("Properties.Get on %s: reply is %T, not a variant", c.path, c.body[0])
	}
	return v.Store(dest)
}

// maxInFlight bounds the calls a batch has sent and not yet seen answered:
// enough to keep the manager busy, few enough not to flood its queues.
const maxInFlight = 512

// pipeline runs batches of calls over one connection of its own, written
// and read with buffered I/O and godbus's message codec: godbus's Conn costs
// a goroutine, a context and two or three syscalls per call, which makes
// the client, not the manager, the bottleneck for thousands of Gets.
// Addresses it cannot dial itself (not unix:path= or unix:abstract=) fall
// back to pipelining over a godbus Conn.
type pipeline struct {
	address string
	bus     bool // needs Hello and destination routing

	mu     sync.Mutex // one batch at a time
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	serial uint32
}

// unixSocketAddr returns the socket a D-Bus address names, if it is one
// this package dials itself.
func unixSocketAddr(address string) (string, bool) {
	for _, a := range strings.Split(address, ";") {
		rest, ok := strings.CutPrefix(a, "unix:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v, err := url.PathUnescape(v)
			if err != nil {
				continue
			}
			switch k {
			case "path":
				return v, true
			case "abstract":
				return "@" + v, true
			}
		}
	}
	return "", false
}

// dial connects and authenticates with EXTERNAL.
func (p *pipeline) dial(ctx context.Context) error {
	sock, ok := unixSocketAddr(p.address)
	if !ok {
		return errUnsupportedAddress
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("dial %s: %w", p.address, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriterSize(conn, 64<<10)
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	if _, err := w.WriteString("\x00AUTH EXTERNAL " + uid + "\r\n"); err == nil {
		err = w.Flush()
	}
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		conn.Close()
		if err == nil {
			err = fmt.Errorf("server said %q", strings.TrimSpace(line))
		}
		return fmt.Errorf("auth %s: %w", p.address, err)
	}
	if _, err := w.WriteString("BEGIN\r\n"); err != nil {
		conn.Close()
		return err
	}
	p.conn, p.r, p.w = conn, r, w
	if p.bus {
		hello := &call{path: "/org/freedesktop/DBus", method: "org.freedesktop.DBus.Hello"}
		if err := p.exchange([]*call{hello}, "org.freedesktop.DBus"); err == nil {
			err = hello.err
		}
		if err != nil {
			p.reset()
			return fmt.Errorf("hello %s: %w", p.address, err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return nil
}

var errUnsupportedAddress = errors.New("address not dialled by the pipeline")

func (p *pipeline) reset() {
	if p.conn != nil {
		p.conn.Close()
	}
	p.conn, p.r, p.w = nil, nil, nil
}

func (p *pipeline) close() {
	p.mu.Lock()
	p.reset()
	p.mu.Unlock()
}

// run sends every call and waits for every reply. Per-call errors are left
// in the calls; the returned error means the connection failed.
func (p *pipeline) run(ctx context.Context, calls []*call) error {
	if len(calls) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil {
		if err := p.dial(ctx); err != nil {
			return err
		}
	}
	conn := p.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	err := p.exchange(calls, busName)
	if !stop() || err != nil {
		// Cancelled or broken mid-stream: replies may still be on the way.
		p.reset()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// exchange writes the calls (at most maxInFlight unanswered) from a
// goroutine and reads replies here.
func (p *pipeline) exchange(calls []*call, dest string) error {
	base := p.serial
	if base > 1<<31 {
		base = 0
	}
	p.serial = base + uint32(len(calls))
	credit := make(chan struct{}, maxInFlight)
	werr := make(chan error, 1)
	encErr := make([]error, len(calls)) // the writer's; read after werr
	quit := make(chan struct{})
	defer close(quit)
	w, r := p.w, p.r
	go func() {
		var buf bytes.Buffer
		for i, c := range calls {
			select {
			case credit <- struct{}{}:
			default:
				if err := w.Flush(); err != nil {
					werr <- err
					return
				}
				select {
				case credit <- struct{}{}:
				case <-quit:
					return
				}
			}
			buf.Reset()
			if err := encodeCall(&buf, c, dest, base+uint32(i)+1); err != nil {
				encErr[i] = err
				// Keep the serial accounting: send a harmless Peer.Ping instead.
				buf.Reset()
				_ = encodeCall(&buf, &call{path: managerPath, method: "org.freedesktop.DBus.Peer.Ping"}, dest, base+uint32(i)+1)
			}
			if _, err := w.Write(buf.Bytes()); err != nil {
				werr <- err
				return
			}
		}
		werr <- w.Flush()
	}()
	pending := len(calls)
	for pending > 0 {
		msg, err := dbus.DecodeMessage(r)
		if err != nil {
			select {
			case werr2 := <-werr:
				if werr2 != nil {
					return fmt.Errorf("write to %s: %w", p.address, werr2)
				}
			default:
			}
			return fmt.Errorf("read from %s: %w", p.address, err)
		}
		if msg.Type != dbus.TypeMethodReply && msg.Type != dbus.TypeError {
			continue // a signal, e.g. NameAcquired from a bus
		}
		rs, _ := msg.Headers[dbus.FieldReplySerial].Value().(uint32)
		i := int(rs - base - 1)
		if rs <= base || i >= len(calls) {
			continue
		}
		c := calls[i]
		pending--
		<-credit
		if msg.Type == dbus.TypeError {
			name, _ := msg.Headers[dbus.FieldErrorName].Value().(string)
			c.err = dbus.Error{Name: name, Body: msg.Body}
		} else {
			c.body = msg.Body
		}
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write to %s: %w", p.address, err)
	}
	for i, err := range encErr {
		if err != nil {
			calls[i].body, calls[i].err = nil, fmt.Errorf("encode %s on %s: %w", calls[i].method, calls[i].path, err)
		}
	}
	return nil
}

// encodeCall writes c as a method call message with the given serial:
// godbus encodes it (its serial field is private), and the serial is
// patched in at its fixed offset of the header.
func encodeCall(buf *bytes.Buffer, c *call, dest string, serial uint32) error {
	i := strings.LastIndexByte(c.method, '.')
	if i < 0 {
		return fmt.Errorf("method %q has no interface", c.method)
	}
	msg := &dbus.Message{
		Type: dbus.TypeMethodCall,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(c.path),
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldInterface:   dbus.MakeVariant(c.method[:i]),
			dbus.FieldMember:      dbus.MakeVariant(c.method[i+1:]),
		},
		Body: c.args,
	}
	if len(c.args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(c.args...))
	}
	start := buf.Len()
	if err := msg.EncodeTo(buf, binary.LittleEndian); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(buf.Bytes()[start+8:], serial)
	return nil
}

// runOnConn pipelines calls over a godbus connection: the fallback for
// addresses the pipeline does not dial.
func runOnConn(ctx context.Context, conn *dbus.Conn, calls []*call) error {
	done := make(chan *dbus.Call, maxInFlight)
	inFlight := 0
	idx := map[*dbus.Call]*call{}
	collect := func() error {
		select {
		case dc := <-done:
			c := idx[dc]
			delete(idx, dc)
			inFlight--
			c.body, c.err = dc.Body, dc.Err
			if errors.Is(dc.Err, dbus.ErrClosed) {
				return dc.Err
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, c := range calls {
		for inFlight >= maxInFlight {
			if err := collect(); err != nil {
				return err
			}
		}
		dc := conn.Object(busName, c.path).GoWithContext(ctx, c.method, 0, done, c.args...)
		idx[dc] = c
		inFlight++
	}
	for inFlight > 0 {
		if err := collect(); err != nil {
			return err
		}
	}
	return nil
}
