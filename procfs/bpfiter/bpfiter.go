// Package bpfiter lists every socket descriptor of the host, as (pid, fd,
// inode), in one run of a BPF task_file iterator: the kernel walks every
// process's file table and writes one 16-byte record per socket, where the
// /proc method reads a link per descriptor.
//
// The program is built at run time with cilium/ebpf's asm package (no C,
// no compiled object); the offsets of the fields it reads come from the
// running kernel's BTF. It loads where the kernel has task_file iterators
// (5.8+) and BTF, the caller may load tracing programs (root, or
// CAP_BPF+CAP_PERFMON) and lockdown does not forbid it; Open says why not
// otherwise, and the caller reads /proc instead.
package bpfiter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// progName is the program's name, as bpftool lists it.
const progName = "fdtop_sockfds"

// RecordSize is the size of one record the program writes: tgid (u32),
// fd (u32), inode (u64), in the host's byte order.
const RecordSize = 16

// Record is one socket descriptor: the process (thread group) that holds
// it, the descriptor number and the socket's inode.
type Record struct {
	PID   int32
	FD    int32
	Inode uint64
}

// Options tune Open.
type Options struct {
	// BTFPath reads the kernel's types from this file instead of the
	// running kernel's (/sys/kernel/btf/vmlinux and the usual places). A
	// missing file is how tests stand for a kernel without BTF.
	BTFPath string
	// Reject adds an instruction the verifier refuses (a read of a
	// register never written): how tests stand for a kernel that will not
	// load the program.
	Reject bool
	// FailRuns makes every Records call fail as it does inside another
	// pid namespace (ErrOtherPIDNamespace): how tests stand for a run
	// that fails once the program is loaded.
	FailRuns bool
}

// Iter is a loaded and attached task_file iterator. Safe for concurrent
// use; each Records call is one run over every process.
type Iter struct {
	prog *ebpf.Program
	link *link.Iter

	mu     sync.Mutex
	marker int    // a socket of this process, to check the pids (see Records)
	ino    uint64 // its inode
	fail   bool   // Options.FailRuns
	fast   bool   // loaded by fastLoad, not the loader
}

// offsets are the field offsets the program reads, in bytes.
type offsets struct {
	meta, task, fd, file int16 // struct bpf_iter__task_file
	seq                  int16 // struct bpf_iter_meta
	pid, tgid            int16 // struct task_struct
	fInode               int16 // struct file
	iMode, iIno          int16 // struct inode
}

// Open loads the program and attaches it. Its error says what is missing.
func Open(opts Options) (*Iter, error) {
	var prog *ebpf.Program
	fast := false
	if opts.BTFPath == "" && !opts.Reject {
		// The fast load (fastload.go); the loader where it fails.
		if p, err := fastLoad(); err == nil {
			prog, fast = p, true
		}
	}
	if prog == nil {
		var err error
		if prog, err = load(opts); err != nil {
			return nil, err
		}
	}
	l, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attach task_file iterator: %w", explain(err))
	}
	it := &Iter{prog: prog, link: l, marker: -1, fail: opts.FailRuns, fast: fast}
	// A socket of this process, found in every run, tells that the
	// kernel's pids are this process's: not so inside a pid namespace.
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		it.Close()
		return nil, fmt.Errorf("marker socket: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		it.Close()
		return nil, fmt.Errorf("marker socket: %w", err)
	}
	it.marker, it.ino = fd, st.Ino
	return it, nil
}

// load builds and loads the program with cilium/ebpf's loader.
func load(opts Options) (*ebpf.Program, error) {
	// The kernel's types are parsed once (tens of milliseconds): for the
	// offsets here and, through the cache, for the loader's lookup of the
	// iterator's attach point.
	cache := btf.NewCache()
	var spec *btf.Spec
	var err error
	if opts.BTFPath != "" {
		spec, err = btf.LoadSpec(opts.BTFPath)
	} else {
		spec, err = cache.Kernel()
	}
	if err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	off, err := lookupOffsets(spec)
	if err != nil {
		return nil, fmt.Errorf("kernel BTF: %w", err)
	}
	insns := program(off)
	if opts.Reject {
		// r9 is never written: the verifier refuses to read it.
		insns = append(asm.Instructions{asm.Mov.Reg(asm.R0, asm.R9)}, insns...)
	}
	// A collection of one program: unlike NewProgram, it takes the cache.
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{progName: {
		Name:         progName,
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceIter,
		AttachTo:     "task_file",
		Instructions: insns,
		License:      "GPL",
	}}}, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: spec}, Cache: cache})
	if err != nil {
		return nil, fmt.Errorf("load task_file iterator: %w", explain(err))
	}
	prog := coll.DetachProgram(progName)
	coll.Close()
	return prog, nil
}

// explain adds the likely cause to a permission error.
func explain(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return err
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("not permitted: needs root or CAP_BPF and CAP_PERFMON, and no lockdown (%w)", err)
	}
	return err
}

// ErrOtherPIDNamespace is returned by Records when the kernel's pids are
// not those of this process's pid namespace (fdtop runs in a container).
var ErrOtherPIDNamespace = errors.New("the iterator's pids are not this pid namespace's")

// Records runs the iterator once and returns every socket descriptor of
// the host. The pids are checked against this process's own: inside
// another pid namespace than the initial one it returns
// ErrOtherPIDNamespace rather than pids /proc does not know.
func (it *Iter) Records() ([]Record, error) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.link == nil {
		return nil, errors.New("iterator closed")
	}
	rd, err := it.link.Open()
	if err != nil {
		return nil, fmt.Errorf("run task_file iterator: %w", err)
	}
	defer rd.Close()
	out, err := readRecords(rd)
	if err != nil {
		return nil, fmt.Errorf("read task_file iterator: %w", err)
	}
	if it.fail {
		return nil, ErrOtherPIDNamespace
	}
	self, marker := int32(os.Getpid()), int32(it.marker)
	for _, r := range out {
		if r.FD == marker && r.Inode == it.ino && r.PID == self {
			return out, nil
		}
	}
	return nil, ErrOtherPIDNamespace
}

// readRecords decodes records until EOF, reading in large chunks (a
// million descriptors are 16 MB of records) into blocks of records, then
// one slice of the exact size: no slice grows record by record.
func readRecords(rd io.Reader) ([]Record, error) {
	const block = 1 << 16
	var blocks [][]Record
	cur := make([]Record, 0, block)
	total := 0
	buf := make([]byte, 1<<20)
	have := 0 // bytes in buf not decoded yet
	for {
		n, err := rd.Read(buf[have:])
		have += n
		full := have - have%RecordSize
		for b := buf[:full]; len(b) > 0; b = b[RecordSize:] {
			if len(cur) == cap(cur) {
				blocks, cur = append(blocks, cur), make([]Record, 0, block)
			}
			cur = append(cur, Record{
				PID:   int32(binary.NativeEndian.Uint32(b[0:4])),
				FD:    int32(binary.NativeEndian.Uint32(b[4:8])),
				Inode: binary.NativeEndian.Uint64(b[8:16]),
			})
			total++
		}
		have = copy(buf, buf[full:have])
		switch {
		case err == io.EOF && have == 0:
			if len(blocks) == 0 {
				return cur, nil
			}
			out := make([]Record, 0, total)
			for _, b := range append(blocks, cur) {
				out = append(out, b...)
			}
			return out, nil
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
	}
}

// Close detaches and unloads the program.
func (it *Iter) Close() error {
	it.mu.Lock()
	defer it.mu.Unlock()
	var err error
	if it.link != nil {
		err = it.link.Close()
		it.link = nil
	}
	if it.prog != nil {
		err = errors.Join(err, it.prog.Close())
		it.prog = nil
	}
	if it.marker >= 0 {
		unix.Close(it.marker)
		it.marker = -1
	}
	return err
}

// sIFMT and sIFSOCK are the file type mask and the socket type of i_mode.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
)

// program is the iterator: for a socket file of a thread-group leader
// (what /proc/PID/fd shows), write (tgid, fd, i_ino).
func program(o offsets) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),                      // r6 = ctx
		asm.LoadMem(asm.R7, asm.R6, o.task, asm.DWord),   // r7 = ctx->task
		asm.JEq.Imm(asm.R7, 0, "out"),                    // end of iteration
		asm.LoadMem(asm.R8, asm.R6, o.file, asm.DWord),   // r8 = ctx->file
		asm.JEq.Imm(asm.R8, 0, "out"),                    //
		asm.LoadMem(asm.R2, asm.R7, o.tgid, asm.Word),    // r2 = task->tgid
		asm.LoadMem(asm.R3, asm.R7, o.pid, asm.Word),     // r3 = task->pid
		asm.JNE.Reg(asm.R2, asm.R3, "out"),               // not the leader: /proc/PID/fd does not show it
		asm.StoreMem(asm.RFP, -16, asm.R2, asm.Word),     // rec.tgid
		asm.LoadMem(asm.R9, asm.R8, o.fInode, asm.DWord), // r9 = file->f_inode
		asm.JEq.Imm(asm.R9, 0, "out"),                    //
		asm.LoadMem(asm.R3, asm.R9, o.iMode, asm.Half),   // r3 = inode->i_mode
		asm.And.Imm(asm.R3, sIFMT),                       //
		asm.JNE.Imm(asm.R3, sIFSOCK, "out"),              // sockets only
		asm.LoadMem(asm.R3, asm.R9, o.iIno, asm.DWord),   // r3 = inode->i_ino
		asm.StoreMem(asm.RFP, -8, asm.R3, asm.DWord),     // rec.inode
		asm.LoadMem(asm.R3, asm.R6, o.fd, asm.Word),      // r3 = ctx->fd
		asm.StoreMem(asm.RFP, -12, asm.R3, asm.Word),     // rec.fd
		asm.LoadMem(asm.R1, asm.R6, o.meta, asm.DWord),   // r1 = ctx->meta
		asm.LoadMem(asm.R1, asm.R1, o.seq, asm.DWord),    // r1 = meta->seq
		asm.Mov.Reg(asm.R2, asm.RFP),                     //
		asm.Add.Imm(asm.R2, -RecordSize),                 // r2 = &rec
		asm.Mov.Imm(asm.R3, RecordSize),                  // r3 = sizeof rec
		asm.FnSeqWrite.Call(),                            // bpf_seq_write(seq, &rec, 16)
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),         //
		asm.Return(),                                     //
	}
}

// offsetField is a field the program reads: its struct, its name, how
// many bytes are read, and where its offset goes.
type offsetField struct {
	typ, member string
	size        int
	into        *int16
}

// offsetFields lists the fields the program reads, their offsets going
// into o.
func offsetFields(o *offsets) []offsetField {
	return []offsetField{
		{"bpf_iter__task_file", "meta", 8, &o.meta},
		{"bpf_iter__task_file", "task", 8, &o.task},
		{"bpf_iter__task_file", "fd", 4, &o.fd},
		{"bpf_iter__task_file", "file", 8, &o.file},
		{"bpf_iter_meta", "seq", 8, &o.seq},
		{"task_struct", "pid", 4, &o.pid},
		{"task_struct", "tgid", 4, &o.tgid},
		{"file", "f_inode", 8, &o.fInode},
		{"inode", "i_mode", 2, &o.iMode},
		{"inode", "i_ino", 8, &o.iIno},
	}
}

// lookupOffsets finds the offsets of the fields the program reads.
func lookupOffsets(spec *btf.Spec) (offsets, error) {
	var o offsets
	for _, f := range offsetFields(&o) {
		var s *btf.Struct
		if err := spec.TypeByName(f.typ, &s); err != nil {
			return o, fmt.Errorf("struct %s: %w", f.typ, err)
		}
		off, typ, ok := findMember(s.Members, f.member, 0)
		if !ok {
			return o, fmt.Errorf("struct %s has no %s", f.typ, f.member)
		}
		size, err := btf.Sizeof(typ)
		if err != nil {
			return o, fmt.Errorf("%s.%s: %w", f.typ, f.member, err)
		}
		if size != f.size {
			return o, fmt.Errorf("%s.%s is %d bytes, not %d", f.typ, f.member, size, f.size)
		}
		if off%8 != 0 || off/8 > 1<<15-1 {
			return o, fmt.Errorf("%s.%s at bit %d", f.typ, f.member, off)
		}
		*f.into = int16(off / 8)
	}
	return o, nil
}

// findMember finds a member by name, looking into anonymous structs and
// unions (bpf_iter__task_file's pointers are in unions). It returns the
// offset in bits from the outer struct and the member's type.
func findMember(members []btf.Member, name string, base btf.Bits) (btf.Bits, btf.Type, bool) {
	for _, m := range members {
		if m.Name == name {
			return base + m.Offset, m.Type, true
		}
		if m.Name != "" {
			continue
		}
		var inner []btf.Member
		switch t := btf.UnderlyingType(m.Type).(type) {
		case *btf.Struct:
			inner = t.Members
		case *btf.Union:
			inner = t.Members
		}
		if off, typ, ok := findMember(inner, name, base+m.Offset); ok {
			return off, typ, true
		}
	}
	return 0, nil, false
}
