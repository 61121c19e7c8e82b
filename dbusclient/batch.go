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
	"sync/atomic"
	"syscall"
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
	switch d := dest.(type) {
	case *string:
		if x, ok := v.Value().(string); ok {
			*d = x
			return nil
		}
	case *uint32:
		if x, ok := v.Value().(uint32); ok {
			*d = x
			return nil
		}
	case *uint64:
		if x, ok := v.Value().(uint64); ok {
			*d = x
			return nil
		}
	case *bool:
		if x, ok := v.Value().(bool); ok {
			*d = x
			return nil
		}
	case *[]string:
		if x, ok := v.Value().([]string); ok {
			*d = x
			return nil
		}
	}
	return v.Store(dest)
}

// maxInFlight bounds the calls a batch has sent and not yet seen answered:
// enough to keep the manager busy, few enough not to flood its queues.
const maxInFlight = 2048

// maxInFlightBus is the bound through a bus daemon: dbus-daemon refuses a
// call once a connection has 128 replies pending on the system bus
// (max_replies_per_connection; "The maximum number of pending replies per
// connection has been reached"), which a plain user, who reaches the
// system manager through the bus, met on systemd 262's 200 units.
const maxInFlightBus = 100

// pipeline runs batches of calls over one connection of its own, with
// buffered I/O and the lean codec in wire.go: godbus's Conn costs a
// goroutine, a context, reflection and two or three syscalls per call,
// which makes the client, not the manager, the bottleneck for thousands of
// Gets (measured: 26 µs of client CPU per Get against 8 µs in the manager).
// Addresses it cannot dial itself (not unix:path= or unix:abstract=) fall
// back to pipelining over a godbus Conn.
type pipeline struct {
	address string
	bus     bool // needs Hello and destination routing

	mu      sync.Mutex // one batch at a time
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	serial  uint32
	replies chan []reply  // from readReplies
	failed  chan error    // readReplies' error (buffered 1)
	gone    chan struct{} // closed by reset: readReplies may stop

	peer atomic.Int32 // PID of the socket's server at the last dial (SO_PEERCRED), 0 unknown
}

// peerPID returns the PID of the process that served the socket at the
// last dial (the manager on its private socket, the bus daemon on a bus),
// 0 if unknown.
func (p *pipeline) peerPID() int {
	if p == nil {
		return 0
	}
	return int(p.peer.Load())
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

// pipelineDials counts the pipeline's dial attempts (tests wait on it).
var pipelineDials atomic.Int64

// dial connects and authenticates with EXTERNAL.
func (p *pipeline) dial(ctx context.Context) error {
	sock, ok := unixSocketAddr(p.address)
	if !ok {
		return errUnsupportedAddress
	}
	pipelineDials.Add(1)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("dial %s: %w", p.address, err)
	}
	if uc, ok := conn.(*net.UnixConn); ok {
		if rc, err := uc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) {
				if cr, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
					p.peer.Store(cr.Pid)
				}
			})
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	r := bufio.NewReaderSize(conn, 64<<10)
	w := bufio.NewWriterSize(conn, 64<<10)
	if err := authExternal(r, w, os.Getuid()); err != nil {
		conn.Close()
		return fmt.Errorf("auth %s: %w", p.address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	p.conn, p.r, p.w = conn, r, w
	p.replies, p.failed, p.gone = make(chan []reply, 16), make(chan error, 1), make(chan struct{})
	go readReplies(r, p.replies, p.gone, p.failed)
	if p.bus {
		hello := &call{path: "/org/freedesktop/DBus", method: "org.freedesktop.DBus.Hello"}
		err := p.exchange([]*call{hello}, "org.freedesktop.DBus")
		if err == nil {
			err = hello.err
		}
		if err != nil {
			p.reset()
			return fmt.Errorf("hello %s: %w", p.address, err)
		}
	}
	return nil
}

// authExternal runs the client side of the SASL EXTERNAL exchange for uid:
// AUTH, the server's one-line answer (at most r's buffer long), and BEGIN,
// which is left in w to go out with the first message.
func authExternal(r *bufio.Reader, w *bufio.Writer, uid int) error {
	id := hex.EncodeToString([]byte(strconv.Itoa(uid)))
	if _, err := w.WriteString("\x00AUTH EXTERNAL " + id + "\r\n"); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return errors.New("server's answer is not a line")
		}
		return err
	}
	if !bytes.HasPrefix(line, []byte("OK ")) {
		return fmt.Errorf("server said %q", bytes.TrimSpace(line))
	}
	_, err = w.WriteString("BEGIN\r\n")
	return err
}

// kickInterval is how long the first call on a new godbus connection may
// go unanswered before kickConn sends another.
const kickInterval = 10 * time.Millisecond

var errUnsupportedAddress = errors.New("address not dialled by the pipeline")

func (p *pipeline) reset() {
	if p.conn != nil {
		p.conn.Close()
	}
	if p.gone != nil {
		close(p.gone)
	}
	p.conn, p.r, p.w, p.replies, p.failed, p.gone = nil, nil, nil, nil, nil, nil
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

// reply is one reply read off the pipeline's connection.
type reply struct {
	typ     dbus.Type
	serial  uint32 // the call it answers
	errName string
	body    []any
	err     error // decoding the body failed
}

// readReplies runs for the life of one connection: it reads and decodes
// replies (signals are dropped) and hands them to exchange, until the
// connection fails.
func readReplies(r *bufio.Reader, replies chan<- []reply, gone <-chan struct{}, failed chan<- error) {
	var buf []byte
	var batch []reply
	for {
		var f frame
		var err error
		f, buf, err = readFrame(r, buf)
		if err != nil {
			failed <- err
			return
		}
		if f.typ == dbus.TypeMethodReply || f.typ == dbus.TypeError { // else a signal, e.g. NameAcquired
			rp := reply{typ: f.typ, serial: f.replySerial, errName: f.errName}
			rp.body, rp.err = f.body()
			batch = append(batch, rp)
		}
		// Hand over what was read before blocking for more: one wake-up
		// per burst rather than per reply.
		if len(batch) > 0 && (r.Buffered() == 0 || len(batch) >= 512) {
			select {
			case replies <- batch:
				batch = nil
			case <-gone:
				return
			}
		}
	}
}

// stallTimeout is how long exchange waits for any reply before it kicks
// the manager (see kick) with a Peer.Ping.
const stallTimeout = 25 * time.Millisecond

// exchange writes the calls (at most maxInFlight unanswered, or
// maxInFlightBus through a bus) from a
// goroutine and collects the replies here.
func (p *pipeline) exchange(calls []*call, dest string) error {
	base := p.serial
	if base > 1<<30 {
		base = 0
	}
	last := base + uint32(len(calls)) // kicks use serials after the batch's
	defer func() { p.serial = last }()
	limit := maxInFlight
	if p.bus {
		limit = maxInFlightBus
	}
	credit := make(chan struct{}, limit)
	var wmu sync.Mutex // the writer and kicks share w
	werr := make(chan error, 1)
	encErr := make([]error, len(calls)) // the writer's; read after werr
	quit := make(chan struct{})
	defer close(quit)
	w := p.w
	go func() {
		var buf []byte
		wmu.Lock()
		defer wmu.Unlock()
		for i, c := range calls {
			select {
			case credit <- struct{}{}:
			default:
				if err := w.Flush(); err != nil {
					werr <- err
					return
				}
				wmu.Unlock()
				select {
				case credit <- struct{}{}:
					wmu.Lock()
				case <-quit:
					wmu.Lock()
					return
				}
			}
			var err error
			if buf, err = encodeCall(buf[:0], c, dest, base+uint32(i)+1); err != nil {
				encErr[i] = err
				// Keep the serial accounting: send a harmless Peer.Ping instead.
				buf, _ = encodeCall(buf[:0], &call{path: managerPath, method: "org.freedesktop.DBus.Peer.Ping"}, dest, base+uint32(i)+1)
			}
			if _, err := w.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- w.Flush()
	}()
	fail := func(err error) error {
		select {
		case werr2 := <-werr:
			if werr2 != nil {
				return fmt.Errorf("write to %s: %w", p.address, werr2)
			}
		default:
		}
		return fmt.Errorf("read from %s: %w", p.address, err)
	}
	timer := time.NewTimer(stallTimeout)
	defer timer.Stop()
	for pending := len(calls); pending > 0; {
		select {
		case err := <-p.failed:
			p.failed <- err // stays failed until reset
			return fail(err)
		case <-timer.C:
			// A bus daemon does not stall, and wants nothing before Hello.
			if !p.bus && wmu.TryLock() { // else the writer is busy: no stall
				last++
				b, _ := encodeCall(nil, &call{path: managerPath, method: "org.freedesktop.DBus.Peer.Ping"}, dest, last)
				_, err := w.Write(b)
				if err == nil {
					err = w.Flush()
				}
				wmu.Unlock()
				if err != nil {
					return fmt.Errorf("write to %s: %w", p.address, err)
				}
			}
			timer.Reset(stallTimeout)
		case batch := <-p.replies:
			for _, rp := range batch {
				i := int(rp.serial - base - 1)
				if rp.serial <= base || i >= len(calls) {
					continue // a kick's, or a late one from a cancelled batch
				}
				c := calls[i]
				pending--
				<-credit
				switch {
				case rp.err != nil:
					c.err = fmt.Errorf("decode reply to %s on %s: %w", c.method, c.path, rp.err)
				case rp.typ == dbus.TypeError:
					c.err = dbus.Error{Name: rp.errName, Body: rp.body}
				default:
					c.body = rp.body
				}
			}
			timer.Reset(stallTimeout)
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

// encodeCall appends c as a method call message with the given serial.
// String arguments are marshalled here; others by godbus, whose serial
// field is private, so it is patched in at its fixed header offset.
func encodeCall(b []byte, c *call, dest string, serial uint32) ([]byte, error) {
	i := strings.LastIndexByte(c.method, '.')
	if i < 0 {
		return b, fmt.Errorf("method %q has no interface", c.method)
	}
	if out, ok := appendCall(b, c.path, dest, c.method[:i], c.method[i+1:], c.args, serial); ok {
		return out, nil
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
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return b, err
	}
	binary.LittleEndian.PutUint32(buf.Bytes()[8:], serial)
	return append(b, buf.Bytes()...), nil
}

// runOnConn pipelines calls over a godbus connection: the fallback for
// addresses the pipeline does not dial, which may be a bus (maxInFlightBus).
func runOnConn(ctx context.Context, conn *dbus.Conn, calls []*call) error {
	const maxInFlight = maxInFlightBus
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
