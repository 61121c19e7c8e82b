package bpfiter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The fast load: cilium/ebpf's loader parses every type of the kernel's
// BTF (about 150,000 on a distribution kernel; 20-30 ms of CPU and a few
// MB of garbage per fdtop process) to find the iterator's attach point,
// where the program needs a dozen names. fastLoad finds those in one pass
// over the raw type section, without decoding the others, and loads the
// program with one bpf(BPF_PROG_LOAD). Where anything about it fails, Open
// uses the loader, which says why in its own words.

// vmlinuxBTF is where the running kernel describes its types.
const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// BTF kinds (include/uapi/linux/btf.h).
const (
	kindInt      = 1
	kindPtr      = 2
	kindArray    = 3
	kindStruct   = 4
	kindUnion    = 5
	kindEnum     = 6
	kindFwd      = 7
	kindTypedef  = 8
	kindVolatile = 9
	kindConst    = 10
	kindRestrict = 11
	kindFunc     = 12
	kindProto    = 13
	kindVar      = 14
	kindDatasec  = 15
	kindFloat    = 16
	kindDeclTag  = 17
	kindTypeTag  = 18
	kindEnum64   = 19
)

// rawBTF is a BTF blob's type and string sections, with where each type
// starts (at[id]; id 0 is void).
type rawBTF struct {
	types, strs []byte
	at          []uint32
}

// readRawBTF reads a BTF blob and indexes its types (their sizes only).
func readRawBTF(b []byte) (*rawBTF, error) {
	le := binary.NativeEndian
	if len(b) < 24 || le.Uint16(b[0:2]) != 0xeb9f {
		return nil, errors.New("not BTF in this byte order")
	}
	hdr := uint64(le.Uint32(b[4:8]))
	typeOff, typeLen := hdr+uint64(le.Uint32(b[8:12])), uint64(le.Uint32(b[12:16]))
	strOff, strLen := hdr+uint64(le.Uint32(b[16:20])), uint64(le.Uint32(b[20:24]))
	if typeOff+typeLen > uint64(len(b)) || strOff+strLen > uint64(len(b)) {
		return nil, errors.New("BTF sections out of bounds")
	}
	r := &rawBTF{types: b[typeOff : typeOff+typeLen], strs: b[strOff : strOff+strLen], at: make([]uint32, 1, 1<<18)}
	for off := 0; off < len(r.types); {
		if off+12 > len(r.types) {
			return nil, errors.New("BTF type section truncated")
		}
		info := le.Uint32(r.types[off+4:])
		vlen := int(info & 0xffff)
		var extra int
		switch kind := (info >> 24) & 0x1f; kind {
		case kindPtr, kindFwd, kindTypedef, kindVolatile, kindConst, kindRestrict, kindFunc, kindFloat, kindTypeTag:
		case kindInt, kindVar, kindDeclTag:
			extra = 4
		case kindArray:
			extra = 12
		case kindStruct, kindUnion, kindDatasec, kindEnum64:
			extra = 12 * vlen
		case kindEnum, kindProto:
			extra = 8 * vlen
		default:
			return nil, fmt.Errorf("BTF kind %d not known here", kind)
		}
		r.at = append(r.at, uint32(off))
		off += 12 + extra
	}
	return r, nil
}

// name is the string at off of the string section.
func (r *rawBTF) name(off uint32) []byte {
	if int(off) >= len(r.strs) {
		return nil
	}
	s := r.strs[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// typ returns a type's kind, vlen, kind_flag and size_or_type.
func (r *rawBTF) typ(id uint32) (kind, vlen int, flag bool, sizeType uint32, ok bool) {
	if id == 0 || int(id) >= len(r.at) {
		return 0, 0, false, 0, false
	}
	t := r.types[r.at[id]:]
	info := binary.NativeEndian.Uint32(t[4:])
	return int(info>>24) & 0x1f, int(info & 0xffff), info>>31 == 1, binary.NativeEndian.Uint32(t[8:]), true
}

// find returns the ids of the named structs (with members: not a
// forward declaration) and functions, in one pass.
func (r *rawBTF) find(structs, funcs []string) (map[string]uint32, error) {
	out := map[string]uint32{}
	want := map[string]int{}
	for _, n := range structs {
		want[n] = kindStruct
	}
	for _, n := range funcs {
		want[n] = kindFunc
	}
	for id := 1; id < len(r.at) && len(out) < len(want); id++ {
		t := r.types[r.at[id]:]
		info := binary.NativeEndian.Uint32(t[4:])
		kind := int(info>>24) & 0x1f
		if kind != kindStruct && kind != kindFunc || kind == kindStruct && info&0xffff == 0 {
			continue
		}
		n := r.name(binary.NativeEndian.Uint32(t[0:]))
		if k, ok := want[string(n)]; ok && k == kind {
			if _, dup := out[string(n)]; dup {
				return nil, fmt.Errorf("two types named %s", n)
			}
			out[string(n)] = uint32(id)
		}
	}
	for n := range want {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no %s in the kernel's BTF", n)
		}
	}
	return out, nil
}

// member finds a member of struct or union id by name, looking into
// anonymous ones; it returns its offset in bits and its type.
func (r *rawBTF) member(id uint32, name string, base uint32) (uint32, uint32, bool) {
	kind, vlen, flag, _, ok := r.typ(id)
	if !ok || kind != kindStruct && kind != kindUnion {
		return 0, 0, false
	}
	ms := r.types[r.at[id]+12:]
	for i := range vlen {
		m := ms[12*i:]
		n := r.name(binary.NativeEndian.Uint32(m[0:]))
		mt, off := binary.NativeEndian.Uint32(m[4:]), binary.NativeEndian.Uint32(m[8:])
		if flag {
			off &= 0xffffff // the high byte is a bitfield's size
		}
		if string(n) == name {
			return base + off, mt, true
		}
		if len(n) == 0 {
			if o, t, ok := r.member(r.resolve(mt), name, base+off); ok {
				return o, t, true
			}
		}
	}
	return 0, 0, false
}

// resolve skips typedefs and qualifiers.
func (r *rawBTF) resolve(id uint32) uint32 {
	for range 32 {
		kind, _, _, st, ok := r.typ(id)
		if !ok {
			return 0
		}
		switch kind {
		case kindTypedef, kindVolatile, kindConst, kindRestrict, kindTypeTag:
			id = st
		default:
			return id
		}
	}
	return 0
}

// size is a scalar type's size in bytes (0 where not one).
func (r *rawBTF) size(id uint32) int {
	kind, _, _, st, ok := r.typ(r.resolve(id))
	switch {
	case !ok:
		return 0
	case kind == kindPtr:
		return 8
	case kind == kindInt || kind == kindEnum || kind == kindEnum64 || kind == kindFloat:
		return int(st)
	}
	return 0
}

// rawOffsets finds the fields the program reads and the iterator's attach
// point (the function bpf_iter_task_file) in a BTF blob.
func rawOffsets(b []byte) (offsets, uint32, error) {
	var o offsets
	r, err := readRawBTF(b)
	if err != nil {
		return o, 0, err
	}
	fields := offsetFields(&o)
	var structs []string
	for _, f := range fields {
		structs = append(structs, f.typ)
	}
	ids, err := r.find(structs, []string{"bpf_iter_task_file"})
	if err != nil {
		return o, 0, err
	}
	for _, f := range fields {
		off, typ, ok := r.member(ids[f.typ], f.member, 0)
		if !ok {
			return o, 0, fmt.Errorf("struct %s has no %s", f.typ, f.member)
		}
		if size := r.size(typ); size != f.size {
			return o, 0, fmt.Errorf("%s.%s is %d bytes, not %d", f.typ, f.member, size, f.size)
		}
		if off%8 != 0 || off/8 > 1<<15-1 {
			return o, 0, fmt.Errorf("%s.%s at bit %d", f.typ, f.member, off)
		}
		*f.into = int16(off / 8)
	}
	return o, ids["bpf_iter_task_file"], nil
}

// mapFile maps a file read-only (vmlinux's BTF is several megabytes, of
// which a pass touches each page once); done unmaps it.
func mapFile(path string) (b []byte, done func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() <= 0 {
		return nil, nil, fmt.Errorf("%s: empty", path)
	}
	b, err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", path, err)
	}
	return b, func() { unix.Munmap(b) }, nil
}

// hostOrder is binary.LittleEndian or binary.BigEndian, whichever this
// host is (the assembler takes only those, not binary.NativeEndian).
func hostOrder() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
}

// progLoadAttr is the start of union bpf_attr for BPF_PROG_LOAD, up to
// attach_btf_obj_fd (the kernel takes a shorter attr as zeros after it).
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
	progBTFFD          uint32
	funcInfoRecSize    uint32
	funcInfo           uint64
	funcInfoCnt        uint32
	lineInfoRecSize    uint32
	lineInfo           uint64
	lineInfoCnt        uint32
	attachBTFID        uint32
	attachBTFObjFD     uint32
	_                  uint32
}

// fastLoad reads the running kernel's BTF and loads the program with it.
func fastLoad() (*ebpf.Program, error) {
	b, done, err := mapFile(vmlinuxBTF)
	if err != nil {
		return nil, err
	}
	off, fn, err := rawOffsets(b)
	done()
	if err != nil {
		return nil, err
	}
	var code bytes.Buffer
	if err := program(off).Marshal(&code, hostOrder()); err != nil {
		return nil, err
	}
	insns, license := code.Bytes(), []byte("GPL\x00")
	attr := progLoadAttr{
		progType:           uint32(ebpf.Tracing),
		insnCnt:            uint32(len(insns) / 8),
		insns:              uint64(uintptr(unsafe.Pointer(&insns[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&license[0]))),
		expectedAttachType: uint32(ebpf.AttachTraceIter),
		attachBTFID:        fn,
	}
	copy(attr.progName[:len(attr.progName)-1], progName)
	for try := 0; ; try++ {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(insns)
		runtime.KeepAlive(license)
		if errno == unix.EAGAIN && try < 5 {
			continue // the verifier was interrupted: as the loader does
		}
		if errno != 0 {
			return nil, fmt.Errorf("BPF_PROG_LOAD: %w", errno)
		}
		prog, err := ebpf.NewProgramFromFD(int(fd))
		if err != nil {
			unix.Close(int(fd))
			return nil, err
		}
		return prog, nil
	}
}
