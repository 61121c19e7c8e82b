package dbusclient

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// unitStatus is one entry of ListUnitsByPatterns: a(ssssssouso).
type unitStatus struct {
	Name, Description, LoadState, ActiveState, SubState, Following string
	Path                                                           dbus.ObjectPath
	JobID                                                          uint32
	JobType                                                        string
	JobPath                                                        dbus.ObjectPath
}

// UnitState is what the manager's unit list says about a unit.
type UnitState struct {
	Name        string
	Path        dbus.ObjectPath
	Description string
	LoadState   string // loaded, not-found, masked, error, ...
	ActiveState string // active, inactive, failed, activating, deactivating, ...
	SubState    string // type-specific: listening, running, dead, ...
	JobID       uint32 // 0: no job queued
	JobType     string // start, stop, restart, ...
}

func (u unitStatus) state() UnitState {
	return UnitState{
		Name: u.Name, Path: u.Path, Description: u.Description,
		LoadState: u.LoadState, ActiveState: u.ActiveState, SubState: u.SubState,
		JobID: u.JobID, JobType: u.JobType,
	}
}

// Listener is one entry of a socket unit's Listen property.
type Listener struct {
	// Type is systemd's: Stream, Datagram, SequentialPacket, FIFO, Special,
	// Netlink, MessageQueue, USBFunction.
	Type string
	// Address is as systemd prints it: "127.0.0.1:80", "[::1]:80", "/run/x",
	// "@abstract", a FIFO path, ...
	Address string
}

// Network names the listener's kind the way Go's net package does where
// there is a match: tcp, udp, unix, unixgram, unixpacket, sctp; otherwise
// fifo, special, netlink, mqueue, usb-function, or vsock.
func (l Listener) Network() string {
	switch l.Type {
	case "FIFO":
		return "fifo"
	case "Special":
		return "special"
	case "Netlink":
		return "netlink"
	case "MessageQueue":
		return "mqueue"
	case "USBFunction":
		return "usb-function"
	}
	local := strings.HasPrefix(l.Address, "/") || strings.HasPrefix(l.Address, "@")
	if strings.HasPrefix(l.Address, "vsock:") {
		return "vsock"
	}
	switch l.Type {
	case "Stream":
		if local {
			return "unix"
		}
		return "tcp"
	case "Datagram":
		if local {
			return "unixgram"
		}
		return "udp"
	case "SequentialPacket":
		if local {
			return "unixpacket"
		}
		return "sctp"
	}
	return strings.ToLower(l.Type)
}

// Abstract reports whether the listener is in the abstract unix namespace.
func (l Listener) Abstract() bool { return strings.HasPrefix(l.Address, "@") }

// Socket is a socket unit.
type Socket struct {
	UnitState
	Listen             []Listener
	Accept             bool
	FileDescriptorName string
	FlushPending       bool
	// ActiveEnterMonotonic is ActiveEnterTimestampMonotonic: when the
	// unit last became active, in microseconds of CLOCK_MONOTONIC (0:
	// never). A restart moves it on, whoever reads it: a plain user
	// learns from it that the socket went down and up again.
	ActiveEnterMonotonic uint64
	// Triggers lists the units this socket starts. For Accept=yes it names
	// the live per-connection instances.
	Triggers []string
	// WantedBy lists the units that want this socket: a service with
	// Sockets= naming it is among them (and among Triggers), the service
	// of its Service= (or of its own name) is not, unless it also names
	// the socket in Sockets=.
	WantedBy []string
	// Template is, for Accept=yes, the service template its instances are
	// made from, e.g. "echo@.service".
	Template string
	// Instances lists, for Accept=yes, the loaded per-connection instances.
	Instances []string
	// Counters were read with the rest; they never signal changes, so
	// Subscription.Watch polls them.
	Counters SocketCounters
	// Settings are the settings newer managers added (left empty by
	// ListListeners).
	Settings SocketSettings
}

// SocketSettings are socket unit settings that came after systemd 254.
// Each is nil where the manager does not have the property: unknown,
// not zero.
type SocketSettings struct {
	// PollLimitIntervalUSec and PollLimitBurst (v255,
	// PollLimitIntervalSec=/PollLimitBurst=): the manager stops polling
	// the socket's listeners for the rest of the interval once they woke
	// it more than the burst times in it. Interval 0 or burst 0: no limit.
	PollLimitIntervalUSec *uint64
	PollLimitBurst        *uint32
	// PassFDsToExec is PassFileDescriptorsToExec= (v256): the socket's
	// own ExecStartPost=, ExecStopPre= and ExecStopPost= processes get its
	// listeners too.
	PassFDsToExec *bool
	// DeferTrigger is DeferTrigger= (v258): no, yes or patient; with it a
	// trigger whose service start would stop a conflicting active unit
	// waits (SubState deferred).
	DeferTrigger *string
	// DeferTriggerMaxUSec is DeferTriggerMaxSec= (v258): how long a
	// deferred trigger may wait; USecInfinity for no limit.
	DeferTriggerMaxUSec *uint64
	// PassPIDFD is PassPIDFD= (v258): SO_PASSPIDFD on the listeners.
	PassPIDFD *bool
	// AcceptFDs is AcceptFileDescriptors= (v258): whether the listeners
	// take descriptors passed over them (SO_PASSRIGHTS).
	AcceptFDs *bool
}

// USecInfinity is systemd's USEC_INFINITY: a time setting with no limit.
const USecInfinity = ^uint64(0)

// SocketCounters are a socket unit's connection counters.
type SocketCounters struct {
	NConnections uint32 // connections open now (Accept=yes)
	NAccepted    uint32 // connections accepted since the socket started
	NRefused     uint32 // connections refused (trigger limit hit, ...)
}

// Counters are the polled values of one unit: SocketCounters for sockets,
// NFileDescriptorStore for services.
type Counters struct {
	SocketCounters
	NFileDescriptorStore uint32
}

// Service is a service unit.
type Service struct {
	UnitState
	Type         string // simple, exec, forking, oneshot, dbus, notify, ...
	NotifyAccess string // none, main, exec, all
	Result       string // success, exit-code, signal, timeout, ...
	StatusText   string
	MainPID      uint32
	ControlPID   uint32
	ExecMainPID  uint32
	// ExecMainStart is ExecMainStartTimestamp; zero if it never ran.
	ExecMainStart time.Time
	NRestarts     uint32
	// FDStoreMax is FileDescriptorStoreMax; NFDStore the entries held now.
	FDStoreMax uint32
	NFDStore   uint32
	// FDStorePreserve is FileDescriptorStorePreserve (no, restart, yes), or
	// "" where the manager lacks it (before v254).
	FDStorePreserve string
	ControlGroup    string
	// TriggeredBy lists the socket units, among those read with it, that
	// start this service.
	TriggeredBy []string
	// Template is the template of an instance ("x@1.service" -> "x@.service").
	Template string
	// Processes are the unit's processes (GetUnitProcesses); not read for
	// inactive units, which have none.
	Processes []Process
}

// Process is one process of a unit's control group.
type Process struct {
	PID     uint32
	Cmdline string
	CGroup  string
}

// State is everything the dashboard shows about socket activation.
type State struct {
	Sockets  []Socket
	Services []Service
}

// FDStore is a service's file descriptor store.
type FDStore struct {
	Service  string
	Max      uint32 // FileDescriptorStoreMax
	Count    uint32 // NFileDescriptorStore
	Preserve string // FileDescriptorStorePreserve; "" before v254
	// Listed is false where the manager cannot list the entries (before
	// v254): Entries is then empty and only Count is known, and the
	// entries must be reconstructed from the manager's file descriptors.
	Listed  bool
	Entries []StoreEntry
	// Denied reports that the manager refused to list the entries to this
	// caller (systemd 254+ asks polkit for DumpUnitFileDescriptorStore on
	// the system bus: a plain user is refused). Listed is then false and
	// the entries are unknown; Max, Count and Preserve are still known.
	Denied bool
}

// StoreEntry is one fd store entry, as DumpUnitFileDescriptorStore reports.
type StoreEntry struct {
	Name  string // the FDNAME= it was stored with ("stored" if none)
	Mode  uint32 // st_mode
	Dev   DevNum
	Inode uint64
	Rdev  DevNum
	Path  string // readlink of the fd: "socket:[123]", "/memfd:x (deleted)"
	Flags uint32 // open flags (O_RDWR, O_NONBLOCK, ...)
}

// DevNum is a device number.
type DevNum struct{ Major, Minor uint32 }

// FileType names the type bits of Mode: socket, fifo, regular, dir, char,
// block, symlink, or unknown.
func (e StoreEntry) FileType() string {
	switch e.Mode & 0o170000 {
	case 0o140000:
		return "socket"
	case 0o010000:
		return "fifo"
	case 0o100000:
		return "regular"
	case 0o040000:
		return "dir"
	case 0o020000:
		return "char"
	case 0o060000:
		return "block"
	case 0o120000:
		return "symlink"
	}
	return "unknown"
}

// templateOf returns the template of an instance name, or "".
func templateOf(name string) string {
	at := strings.IndexByte(name, '@')
	dot := strings.LastIndexByte(name, '.')
	if at < 0 || dot < at {
		return ""
	}
	return name[:at+1] + name[dot:]
}

// Service returns the service this socket starts: for Accept=yes its
// template; else, among the services it triggers, the one its Service=
// names (or its own name's). Triggers also holds every service that names
// the socket in Sockets= (those are among WantedBy and get its listeners
// too when they start), in no meaningful order: the first trigger that
// does not want the socket is Service=, and where all of them want it the
// one named like the socket is its default. "" when it triggers none.
func (s Socket) Service() string {
	if s.Template != "" {
		return s.Template
	}
	var svcs []string
	for _, t := range s.Triggers {
		if strings.HasSuffix(t, ".service") {
			svcs = append(svcs, t)
		}
	}
	sort.Strings(svcs)
	for _, t := range svcs {
		if !slices.Contains(s.WantedBy, t) {
			return t
		}
	}
	own := strings.TrimSuffix(s.Name, ".socket") + ".service"
	if slices.Contains(svcs, own) {
		return own
	}
	if len(svcs) > 0 {
		return svcs[0]
	}
	if len(s.Triggers) > 0 {
		return s.Triggers[0]
	}
	return ""
}

// Starts reports whether unit is one of the services this socket passes
// its listeners to: one it triggers (its Service= and every service naming
// it in Sockets=), or, for Accept=yes, an instance of its template.
func (s Socket) Starts(unit string) bool {
	if unit == "" {
		return false
	}
	if slices.Contains(s.Triggers, unit) || unit == s.Service() {
		return true
	}
	return s.Accept && s.Template != "" && unit != s.Template && templateOf(unit) == s.Template
}
