package bpfiter

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cilium/ebpf/btf"
)

// TestFindMember: members are found through anonymous unions and structs
// (bpf_iter__task_file's pointers sit in unions), with their offsets.
func TestFindMember(t *testing.T) {
	u64 := &btf.Int{Name: "u64", Size: 8}
	u32 := &btf.Int{Name: "u32", Size: 4}
	ptr := &btf.Pointer{Target: &btf.Void{}}
	s := &btf.Struct{Name: "bpf_iter__task_file", Size: 32, Members: []btf.Member{
		{Name: "", Type: &btf.Union{Size: 8, Members: []btf.Member{{Name: "meta", Type: ptr}, {Name: "", Type: u64}}}, Offset: 0},
		{Name: "", Type: &btf.Union{Size: 8, Members: []btf.Member{{Name: "task", Type: ptr}}}, Offset: 64},
		{Name: "fd", Type: u32, Offset: 128},
		{Name: "", Type: &btf.Struct{Size: 8, Members: []btf.Member{{Name: "file", Type: ptr}}}, Offset: 192},
	}}
	tests := []struct {
		name string
		off  btf.Bits
		ok   bool
	}{
		{"meta", 0, true}, {"task", 64, true}, {"fd", 128, true}, {"file", 192, true}, {"nope", 0, false},
	}
	for _, tt := range tests {
		off, _, ok := findMember(s.Members, tt.name, 0)
		if ok != tt.ok || off != tt.off {
			t.Errorf("%s: offset %d, %v; want %d, %v", tt.name, off, ok, tt.off, tt.ok)
		}
	}
}

// TestReadRecords decodes records; a torn record is an error.
func TestReadRecords(t *testing.T) {
	var b bytes.Buffer
	for _, r := range []Record{{1, 3, 100}, {42, 7, 1 << 40}} {
		binary.Write(&b, binary.NativeEndian, r)
	}
	got, err := readRecords(bytes.NewReader(b.Bytes()))
	if err != nil || len(got) != 2 || got[1] != (Record{42, 7, 1 << 40}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := readRecords(bytes.NewReader(b.Bytes()[:20])); err == nil {
		t.Fatal("a torn record was not an error")
	}
	// More records than a block, read in pieces that cut records.
	b.Reset()
	const n = 1<<16 + 1000
	for i := range n {
		binary.Write(&b, binary.NativeEndian, Record{int32(i), 3, uint64(i) << 8})
	}
	got, err = readRecords(iotest.HalfReader(bytes.NewReader(b.Bytes())))
	if err != nil || len(got) != n {
		t.Fatalf("%d records, %v; want %d", len(got), err, n)
	}
	for i, r := range got {
		if r != (Record{int32(i), 3, uint64(i) << 8}) {
			t.Fatalf("record %d = %v", i, r)
		}
	}
}

// TestKernelOffsets: this kernel's BTF has every field the program reads,
// of the size it reads (skipped without BTF, failed under CI=true).
func TestKernelOffsets(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kernel BTF (CI=true: not skipping): %v", err)
		}
		t.Skip(err)
	}
	o, err := lookupOffsets(spec)
	if err != nil {
		t.Fatal(err)
	}
	if o.task != 8 || o.fd != 16 || o.file != 24 {
		t.Errorf("bpf_iter__task_file offsets %+v: want task 8, fd 16, file 24 (the kernel's ABI)", o)
	}
}

// TestOpenMissingBTF: without BTF, Open says so.
func TestOpenMissingBTF(t *testing.T) {
	_, err := Open(Options{BTFPath: t.TempDir() + "/vmlinux"})
	if err == nil || !strings.Contains(err.Error(), "kernel BTF") {
		t.Fatalf("Open = %v, want a kernel BTF error", err)
	}
}

// TestRawOffsetsMatchLoader: the fast load's one pass over the raw BTF
// finds the same offsets as the loader's parse of it, and the attach
// point's type id the loader would use (this kernel's BTF; skipped
// without it, failed under CI=true).
func TestRawOffsetsMatchLoader(t *testing.T) {
	raw, err := os.ReadFile(vmlinuxBTF)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kernel BTF (CI=true: not skipping): %v", err)
		}
		t.Skip(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want, err := lookupOffsets(spec)
	if err != nil {
		t.Fatal(err)
	}
	var fn *btf.Func
	if err := spec.TypeByName("bpf_iter_task_file", &fn); err != nil {
		t.Fatal(err)
	}
	wantID, err := spec.TypeID(fn)
	if err != nil {
		t.Fatal(err)
	}
	got, id, err := rawOffsets(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || id != uint32(wantID) {
		t.Errorf("raw: offsets %+v, attach point %d; the loader's: %+v, %d", got, id, want, wantID)
	}
	// A blob cut short, or of a kind not known, is an error, not a guess.
	for _, bad := range [][]byte{raw[:len(raw)/2], raw[:10], append([]byte{0xff, 0xff}, raw[2:]...)} {
		if _, _, err := rawOffsets(bad); err == nil {
			t.Errorf("a damaged blob of %d bytes read without error", len(bad))
		}
	}
}

// TestOpenFast: as root here, Open loads with the fast path and the
// iterator lists this process's marker socket; with Options set for the
// tests (Reject), the loader is used and says why.
func TestOpenFast(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (CI=true: not skipping)")
		}
		t.Skip("needs root")
	}
	it, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.fast {
		t.Error("Open did not take the fast load")
	}
	if _, err := it.Records(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Reject: true}); err == nil || !strings.Contains(err.Error(), "load task_file iterator") {
		t.Errorf("Open(Reject) = %v, want the loader's refusal", err)
	}
}
