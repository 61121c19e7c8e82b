// Command procfs-bench times fdtop's /proc scan against the floor: a bare
// single-threaded walk that only readlinks every /proc/*/fd entry. It is
// driven by tools/procfs-compare.sh.
//
//	procfs-bench -mode scan      # full host scan, every fd classified, every socket resolved
//	procfs-bench -mode scan -related -pids 1,2   # full scan keeping what relates to pids 1 and 2
//	procfs-bench -mode bare      # the floor: getdents64 + readlinkat over /proc/*/fd
//	procfs-bench -mode targeted -pids 1,2,3   # targeted scan (after one warm-up full scan)
//	procfs-bench -mode sockets   # socket tables only
//	procfs-bench -mode json      # full scan printed as JSON
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fdtop/fdtop/procfs"
	"github.com/fdtop/fdtop/tools/loadgen"
)

// runLoad starts a load, writes the pids, and holds it until SIGTERM/SIGINT
// or the hold time, then tears it down.
func runLoad(procs, fds int, hold time.Duration, pidFile string) error {
	start := time.Now()
	l, err := loadgen.Start(procs, fds, hold)
	if err != nil {
		return err
	}
	defer l.Stop()
	var sb strings.Builder
	for _, p := range l.PIDs {
		sb.WriteString(strconv.Itoa(p) + "\n")
	}
	if pidFile != "" {
		if err := os.WriteFile(pidFile+".tmp", []byte(sb.String()), 0o644); err != nil {
			return err
		}
		if err := os.Rename(pidFile+".tmp", pidFile); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "load %d×%d ready in %.1fs\n", procs, fds, time.Since(start).Seconds())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(hold):
	}
	return nil
}

func main() {
	mode := flag.String("mode", "scan", "scan, bare, targeted, sockets or json")
	root := flag.String("root", "/proc", "proc root")
	pidList := flag.String("pids", "", "comma-separated pids for -mode targeted")
	n := flag.Int("n", 1, "repetitions (the last one is reported)")
	fdinfo := flag.Bool("fdinfo", false, "read fdinfo too")
	noNetlink := flag.Bool("no-netlink", false, "read /proc/net instead of sock_diag")
	noSockets := flag.Bool("no-sockets", false, "skip socket details")
	workers := flag.Int("workers", 0, "walker goroutines (0: GOMAXPROCS)")
	procs := flag.Int("procs", 200, "holder processes for -mode load")
	fdsPer := flag.Int("fds", 100, "descriptors per holder for -mode load")
	hold := flag.Duration("hold", 10*time.Minute, "how long -mode load holds the load at most")
	pidFile := flag.String("pidfile", "", "-mode load writes the holder pids here once ready")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile")
	memProfile := flag.String("memprofile", "", "write a heap profile after the last repetition")
	related := flag.Bool("related", false, "-mode scan: keep only what relates to -pids (ScanOptions.Related)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if *mode == "load" {
		if err := runLoad(*procs, *fdsPer, *hold, *pidFile); err != nil {
			fmt.Fprintln(os.Stderr, "procfs-bench:", err)
			os.Exit(1)
		}
		return
	}
	opts := procfs.ScanOptions{FDInfo: *fdinfo, NoNetlink: *noNetlink, NoSockets: *noSockets, Workers: *workers, Related: *related}
	if *related {
		opts.FreshPIDs = parsePIDs(*pidList)
	}
	if err := run(*mode, *root, *pidList, *n, opts, *memProfile); err != nil {
		fmt.Fprintln(os.Stderr, "procfs-bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// parsePIDs reads a comma-separated list of pids.
func parsePIDs(list string) []int {
	var pids []int
	for _, f := range strings.Split(list, ",") {
		if p, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

func run(mode, root, pidList string, n int, opts procfs.ScanOptions, memProfile string) error {
	ctx := context.Background()
	fs, err := procfs.New(root)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		start := time.Now()
		var summary string
		switch mode {
		case "bare":
			fds, err := bareWalk(root)
			if err != nil {
				return err
			}
			summary = fmt.Sprintf("fds=%d", fds)
		case "scan", "json":
			s, err := fs.Scan(ctx, opts)
			if err != nil {
				return err
			}
			if mode == "json" {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", " ")
				return enc.Encode(s)
			}
			summary = summarize(s)
			if memProfile != "" && i == n-1 {
				if err := writeHeap(memProfile); err != nil {
					return err
				}
				runtime.KeepAlive(s)
			}
		case "targeted":
			pids := parsePIDs(pidList)
			if i == 0 {
				if _, err := fs.Scan(ctx, opts); err != nil { // warm the socket cache
					return err
				}
				start = time.Now()
			}
			s, err := fs.ScanPIDs(ctx, pids, opts)
			if err != nil {
				return err
			}
			summary = summarize(s)
		case "sockets":
			m, _, err := fs.Sockets(ctx, opts)
			if err != nil {
				return err
			}
			summary = fmt.Sprintf("sockets=%d", len(m))
		default:
			return fmt.Errorf("unknown mode %q", mode)
		}
		if i == n-1 {
			fmt.Printf("%s %.4fs %s\n", mode, time.Since(start).Seconds(), summary)
		}
	}
	return nil
}

// writeHeap writes a heap profile of what is alive now.
func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func summarize(s *procfs.Scan) string {
	fds, socks, resolved := 0, 0, 0
	for _, p := range s.Processes {
		fds += len(p.FDs)
		for _, fd := range p.FDs {
			if fd.Kind == procfs.KindSocket {
				socks++
				if so, ok := s.Sockets[fd.Inode]; ok && so.Status == procfs.Resolved {
					resolved++
				}
			}
		}
	}
	return fmt.Sprintf("procs=%d fds=%d socketfds=%d resolved=%d sockets=%d unreadable=%d warnings=%q errors=%d",
		len(s.Processes), fds, socks, resolved, len(s.Sockets), s.Unreadable, s.Warnings, len(s.Errors))
}

// bareWalk is the floor: one thread, getdents64 over /proc and every
// /proc/PID/fd, readlinkat on each entry with the name taken straight from
// the getdents64 buffer. Nothing else.
func bareWalk(root string) (int, error) {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(rootfd)
	dents := make([]byte, 64<<10)
	fdDents := make([]byte, 64<<10)
	link := make([]byte, 4096)
	path := make([]byte, 0, 32)
	total := 0
	for {
		n, err := unix.Getdents(rootfd, dents)
		if err != nil {
			return total, err
		}
		if n <= 0 {
			break
		}
		for b := dents[:n]; len(b) >= 19; {
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			name := b[19:reclen]
			name = name[:bytes.IndexByte(name, 0)]
			b = b[reclen:]
			if len(name) == 0 || name[0] < '0' || name[0] > '9' {
				continue
			}
			path = append(append(path[:0], name...), "/fd\x00"...)
			dfd, err := openat(rootfd, &path[0])
			if err != nil {
				continue
			}
			for {
				m, err := unix.Getdents(dfd, fdDents)
				if err != nil || m <= 0 {
					break
				}
				for d := fdDents[:m]; len(d) >= 19; {
					rl := int(*(*uint16)(unsafe.Pointer(&d[16])))
					nm := d[19:rl]
					d = d[rl:]
					if nm[0] == '.' {
						continue
					}
					r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dfd), uintptr(unsafe.Pointer(&nm[0])),
						uintptr(unsafe.Pointer(&link[0])), uintptr(len(link)), 0, 0)
					if e == 0 && r > 0 {
						total++
					}
				}
			}
			unix.Close(dfd)
		}
	}
	return total, nil
}

func openat(dirfd int, nameZ *byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(nameZ)),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}
