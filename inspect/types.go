package inspect

import "time"

// Snapshot is one joined picture of a manager's socket units, services,
// fd stores and the kernel objects behind them. It is plain data: the UI and
// the JSON output only read it. Its JSON field names are part of fdtop's
// promise to users (see docs/json.md, "snapshot --json").
type Snapshot struct {
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// Manager describes the systemd manager that was asked.
	Manager Manager `json:"manager"`
	// Sockets are the socket units, sorted by name.
	Sockets []SocketUnit `json:"sockets"`
	// Services are the services those sockets trigger plus every service
	// with an fd store, sorted by name.
	Services []Service `json:"services"`
	// Warnings are problems worth an operator's attention.
	Warnings []Warning `json:"warnings"`
	// Host says how complete the kernel side of the picture is.
	Host HostInfo `json:"host"`
	// Unmatched are the unit name patterns that matched no unit (see
	// NoMatchNote).
	Unmatched []string `json:"unmatched_patterns,omitempty"`
	// ManagerInodes are the kernel objects (sockets, pipes, memfds) the
	// manager holds: a connection in a service's fd store is among them.
	ManagerInodes map[uint64]bool `json:"-"`
	// PeerPIDs are the processes, other than the manager, named as holding
	// the other end of a unix connection shown (a service's client, the
	// peer of a stored stream): a scan limited to the units reads them too
	// (Builder), or those ends would be nameless until the next host-wide
	// scan.
	PeerPIDs []int `json:"-"`
}

// Manager describes the systemd manager a snapshot comes from.
type Manager struct {
	// Scope is "system" or "user".
	Scope string `json:"scope"`
	// Version is the manager's Version property, e.g. "254.26-1~bpo12+1".
	Version string `json:"version"`
	// PID is the manager's process ID when known (0 otherwise).
	PID int `json:"pid,omitempty"`
	// Address is the D-Bus address fdtop talks to.
	Address string `json:"address,omitempty"`
	// FDStoreListing reports whether the manager can list fd store entries
	// (DumpUnitFileDescriptorStore, systemd 254+).
	FDStoreListing bool `json:"fdstore_listing"`
	// FDStorePreserve reports whether the manager has
	// FileDescriptorStorePreserve= (systemd 254+).
	FDStorePreserve bool `json:"fdstore_preserve"`
	// FDStoreDenied reports that the manager refused to list fd stores to
	// this user (systemd 254+ asks polkit for DumpUnitFileDescriptorStore
	// on the system bus): their entries are unknown, their counts known.
	FDStoreDenied bool `json:"fdstore_denied,omitempty"`
	// Limits are the things this manager cannot tell, in words.
	Limits []string `json:"limits,omitempty"`
}

// HostInfo says how much of the host the kernel side could read.
type HostInfo struct {
	// Hostname is the machine's name.
	Hostname string `json:"hostname,omitempty"`
	// Unreadable is the number of processes whose descriptors could not be
	// read (permission denied): "N processes not readable".
	Unreadable int `json:"unreadable"`
	// UnreadableProcesses name the processes whose descriptors could not
	// be read (the first 10 by PID; Unreadable counts them all, those not
	// read at all included).
	UnreadableProcesses []UnreadableProcess `json:"unreadable_processes,omitempty"`
	// UnreadableBeforeManager counts those of Unreadable that started
	// before the manager (UnreadableProcess.BeforeManager): they hold
	// nothing the manager or its services made, so they leave no holder
	// or connection unknown.
	UnreadableBeforeManager int `json:"unreadable_before_manager,omitempty"`
	// EnvUnreadable is the number of processes whose descriptors were
	// read but whose environment was not (permission denied): only what
	// they were passed at start (LISTEN_*) is unknown, shown on a service
	// whose main process one is (passed_unknown).
	EnvUnreadable int `json:"env_unreadable,omitempty"`
	// Root reports that fdtop runs as root: processes still not readable
	// are protected by the kernel (another user namespace, PID 1 of a
	// container), not by permissions fdtop could gain.
	Root bool `json:"root"`
	// Partial is set when a socket table dump was interrupted and could not
	// be completed.
	Partial bool `json:"partial,omitempty"`
	// ScanDuration is how long the kernel scan took.
	ScanDuration time.Duration `json:"scan_ns"`
	// HoldersSource says how a host-wide scan found the descriptors of
	// the processes outside the units: "bpf" (one run of a BPF task_file
	// iterator: their sockets only) or "proc" (every /proc/PID/fd). Empty
	// when the scan read only the units' and the manager's processes.
	HoldersSource string `json:"holders_source,omitempty"`
	// HoldersNote says why a host-wide scan read /proc rather than use
	// the BPF iterator; empty when it used BPF.
	HoldersNote string `json:"holders_note,omitempty"`
	// Filling is set on a live model's first picture, a view of every
	// unit that read only the manager's and the units' processes, put on
	// screen before its host-wide pass (MarkFilling): the holders outside
	// the units (a leaked listener, a connection a login took over, who
	// else holds a store entry) are not read yet. The next picture, from
	// that pass, clears it. fdtop snapshot never sets it.
	Filling bool `json:"filling,omitempty"`
}

// UnreadableProcess is a process whose descriptors could not be read.
type UnreadableProcess struct {
	// PID and Comm name it.
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// BeforeManager is set when it started before the manager: it is not
	// the manager's descendant and inherited none of its descriptors (nor
	// its services'), so the holders of listeners, stores and connections
	// do not miss it.
	BeforeManager bool `json:"before_manager,omitempty"`
}

// Relevant counts the unreadable processes that may hold what the
// manager and its services hold: those of Unreadable not known to have
// started before the manager.
func (h HostInfo) Relevant() int {
	return max(h.Unreadable-h.UnreadableBeforeManager, 0)
}

// SocketUnit is a .socket unit with its listeners and who holds them.
type SocketUnit struct {
	// Unit is the unit name, e.g. "web.socket".
	Unit string `json:"unit"`
	// ActiveState and SubState are the unit's states.
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	// Accept is the socket's Accept= setting.
	Accept bool `json:"accept"`
	// Service is the unit it triggers (for Accept=yes, the template).
	Service string `json:"service"`
	// FileDescriptorName is the name the service sees in LISTEN_FDNAMES.
	FileDescriptorName string `json:"fd_name,omitempty"`
	// NConnections, NAccepted and NRefused are the manager's counters.
	NConnections uint32 `json:"n_connections"`
	NAccepted    uint32 `json:"n_accepted"`
	NRefused     uint32 `json:"n_refused"`
	// FlushPending is FlushPending=: queued connections are dropped when the
	// service exits.
	FlushPending bool `json:"flush_pending,omitempty"`
	// ActiveEnterMonotonic is the manager's ActiveEnterTimestampMonotonic
	// of the unit (0: not read, or never active): a greater one in a later
	// view says the unit went down and up again in between.
	ActiveEnterMonotonic uint64 `json:"active_enter_monotonic,omitempty"`
	// The settings below came after systemd 254. Each is absent (nil,
	// "") where the manager does not have it: unknown, not zero or no.
	//
	// PollLimitIntervalUSec and PollLimitBurst are PollLimitIntervalSec=
	// and PollLimitBurst= (v255): past the burst of wake-ups in the
	// interval, the manager stops polling the listeners for the rest of
	// it (nothing says so: SubState stays listening).
	PollLimitIntervalUSec *uint64 `json:"poll_limit_interval_usec,omitempty"`
	PollLimitBurst        *uint32 `json:"poll_limit_burst,omitempty"`
	// PassFDsToExec is PassFileDescriptorsToExec= (v256): the socket
	// unit's own ExecStartPost=/ExecStopPre=/ExecStopPost= processes get
	// the listeners (holders inside the socket unit, not leaks).
	PassFDsToExec *bool `json:"pass_fds_to_exec,omitempty"`
	// DeferTrigger is DeferTrigger= (v258): no, yes, patient. A trigger
	// whose service start would stop a unit it conflicts with waits in
	// SubState deferred (until that unit stops), at
	// most DeferTriggerMaxUSec (18446744073709551615: infinity).
	DeferTrigger        string  `json:"defer_trigger,omitempty"`
	DeferTriggerMaxUSec *uint64 `json:"defer_trigger_max_usec,omitempty"`
	// PassPIDFD is PassPIDFD= (v258): SO_PASSPIDFD on the listeners.
	PassPIDFD *bool `json:"pass_pidfd,omitempty"`
	// AcceptFDs is AcceptFileDescriptors= (v258): the listeners take
	// descriptors sent over them (SO_PASSRIGHTS).
	AcceptFDs *bool `json:"accept_fds,omitempty"`
	// Listeners are the socket's Listen= entries joined with the kernel.
	Listeners []Listener `json:"listeners"`
	// Instances are the per-connection services of an Accept=yes socket.
	Instances []Instance `json:"instances,omitempty"`
}

// Listener is one Listen= entry of a socket unit and the kernel object behind it.
type Listener struct {
	// Type is the Listen type as systemd names it: Stream, Datagram,
	// SequentialPacket, FIFO, Special, Netlink, MessageQueue, USBFunction.
	Type string `json:"type"`
	// Address is the listen address as systemd prints it.
	Address string `json:"address"`
	// Inode is the socket (or FIFO) inode, 0 when not found.
	Inode uint64 `json:"inode"`
	// Backlog is the accept queue depth of a stream listener right now:
	// meaningful only where State is LISTEN (0 otherwise: a datagram
	// socket or FIFO has no accept queue, see RecvQ).
	Backlog uint32 `json:"backlog"`
	// RecvQ is, for a datagram listener, the bytes queued unread in its
	// receive queue right now (what ss shows as Recv-Q); absent where the
	// kernel was not asked or reports none (a FIFO, a stream listener).
	RecvQ *uint32 `json:"recv_q,omitempty"`
	// State is the kernel state of the socket (LISTEN, UNCONN...).
	State string `json:"state,omitempty"`
	// Holders are the processes that hold the listener, the manager first.
	Holders []Holder `json:"holders"`
	// InodeUnknown is set when Inode is 0 because the manager's
	// descriptors could not be read (not root): the listener was not
	// looked for, not found missing.
	InodeUnknown bool `json:"inode_unknown,omitempty"`
	// HoldersPartial is set when some processes' descriptors could not be
	// read: Holders lists only the readable ones.
	HoldersPartial bool `json:"holders_partial,omitempty"`
	// PassedBy is set on a service's own listener that it was passed by a
	// socket unit (LISTEN_FDNAMES names it): not one the service opened,
	// though its socket unit does not show it (stopped, or refused its
	// start while the service ran).
	PassedBy string `json:"passed_by,omitempty"`
}

// Holder is a process holding a descriptor.
type Holder struct {
	// PID is the process.
	PID int `json:"pid"`
	// FD is the descriptor number in that process.
	FD int `json:"fd"`
	// Comm is the process's command name.
	Comm string `json:"comm"`
	// Unit is the systemd unit of the process, from its cgroup.
	Unit string `json:"unit"`
	// Manager is set for the systemd manager itself.
	Manager bool `json:"manager,omitempty"`
	// Outside is set when the holder is neither the manager nor in the unit
	// that should hold it (a leaked descriptor).
	Outside bool `json:"outside,omitempty"`
}

// Instance is one per-connection service of an Accept=yes socket.
type Instance struct {
	// Unit is the instance name, e.g. "echo@3-127.0.0.1:7-127.0.0.1:5000.service".
	Unit string `json:"unit"`
	// ActiveState and SubState are the instance's states.
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	// MainPID is the instance's main process.
	MainPID int `json:"main_pid"`
	// Local and Remote are the connection's ends when found.
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Inode is the connection's socket, 0 when it was not found in the
	// kernel (the instance's process not readable).
	Inode uint64 `json:"inode,omitempty"`
	// Holders are the processes holding the connection, the manager
	// first, each with its unit: a login moves an sshd session out of
	// its instance into session-N.scope (pam_systemd).
	Holders []Holder `json:"holders,omitempty"`
}

// Service is a service unit with what it was passed, what it stores and the
// connections it serves.
type Service struct {
	// Unit is the unit name, e.g. "web.service".
	Unit string `json:"unit"`
	// ActiveState and SubState are the unit's states.
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	// Type is the service Type= (simple, notify, ...).
	Type string `json:"type,omitempty"`
	// Result is the unit's last result (success, exit-code, ...).
	Result string `json:"result,omitempty"`
	// StatusText is what the service last sent as STATUS=.
	StatusText string `json:"status_text,omitempty"`
	// Sockets are the socket units that trigger this service.
	Sockets []string `json:"sockets,omitempty"`
	// MainPID is the main process, 0 when none.
	MainPID int `json:"main_pid"`
	// NRestarts counts automatic restarts.
	NRestarts uint32 `json:"n_restarts"`
	// StartedAt is ExecMainStartTimestamp.
	StartedAt time.Time `json:"started_at,omitempty"`
	// FDStoreMax is FileDescriptorStoreMax=.
	FDStoreMax uint32 `json:"fdstore_max"`
	// FDStoreCount is NFileDescriptorStore.
	FDStoreCount uint32 `json:"fdstore_count"`
	// FDStoreIdentified is how many of the FDStoreCount entries FDStore
	// lists: all of them where the manager lists its store (systemd 254+);
	// before 254 only those matched in the kernel. Fewer than FDStoreCount
	// means the list is short, not that the store is.
	FDStoreIdentified int `json:"fdstore_identified"`
	// FDStorePreserve is FileDescriptorStorePreserve= where the manager has
	// it (no, restart, yes), empty otherwise.
	FDStorePreserve string `json:"fdstore_preserve,omitempty"`
	// FDStoreUnknown is set when the manager refused to list this fd
	// store to this user (Manager.FDStoreDenied): FDStore is empty because
	// its entries are unknown, not because there are none.
	FDStoreUnknown bool `json:"fdstore_unknown,omitempty"`
	// FDStore are the entries of the fd store, listed by the manager or
	// inferred from the kernel.
	FDStore []StoreEntry `json:"fdstore"`
	// Passed are the descriptors the main process was passed at start.
	Passed []PassedFD `json:"passed"`
	// PassedUnknown is set when the main process's environment could not
	// be read (not root): Passed is empty because it was not seen.
	PassedUnknown bool `json:"passed_unknown,omitempty"`
	// ListenPIDFDID is the main process's $LISTEN_PIDFDID (systemd 259+):
	// the pidfd inode id of the process the descriptors were passed to;
	// 0 where the variable is not set (older managers) or not read.
	ListenPIDFDID uint64 `json:"listen_pidfdid,omitempty"`
	// Connections are the connected sockets accepted from the service's
	// listeners (its socket units' and its own), one entry per socket:
	// those its processes hold, and those held elsewhere (Outside), e.g.
	// login sessions in session-N.scope.
	Connections []Connection `json:"connections"`
	// ConnectionsUnknown is set when some of the unit's processes could not
	// be read (not root), or sockets accepted from its listeners exist that
	// no readable process holds: Connections lists only the readable ones.
	ConnectionsUnknown bool `json:"connections_unknown,omitempty"`
	// OwnListeners are listening sockets the service's processes opened
	// themselves (not passed by a socket unit): a restart closes them.
	OwnListeners []Listener `json:"own_listeners,omitempty"`
	// Processes are the unit's processes.
	Processes []Process `json:"processes,omitempty"`
}

// StoreEntry is one descriptor in a service's fd store.
type StoreEntry struct {
	// Name is the FDNAME the service gave it ("stored" when unnamed); ""
	// with NameUnknown where it was not seen.
	Name string `json:"name"`
	// NameUnknown is set when the entry was inferred (systemd before 254
	// does not list its store) and its name was never seen: only a
	// process that was passed the store at start sees the names, in
	// LISTEN_FDNAMES.
	NameUnknown bool `json:"name_unknown,omitempty"`
	// Kind is what sort of descriptor it is (tcp, unix, memfd, pipe, ...).
	Kind string `json:"kind"`
	// Inode is the kernel object's inode.
	Inode uint64 `json:"inode"`
	// Inferred is set when the entry was reconstructed from the manager's
	// descriptors instead of listed by the manager (systemd before 254).
	Inferred bool `json:"inferred"`
	// Detail says what it is: both ends of a connection, a memfd's name...
	Detail string `json:"detail"`
	// ManagerOnly is set when no process but the manager holds it (a
	// connection pinned open by the store).
	ManagerOnly bool `json:"manager_only,omitempty"`
}

// PassedFD is a descriptor the main process was passed at start
// (LISTEN_FDS / LISTEN_FDNAMES), and what it is now.
type PassedFD struct {
	// FD is the descriptor number (3, 4, ...).
	FD int `json:"fd"`
	// Name is its LISTEN_FDNAMES name.
	Name string `json:"name"`
	// Kind is what it is now (tcp-listen, tcp, unix, memfd, closed, ...).
	Kind string `json:"kind"`
	// Inode is the kernel object's inode, 0 when the fd is closed now.
	Inode uint64 `json:"inode"`
	// Detail describes it: an address, both ends, a memfd name.
	Detail string `json:"detail"`
}

// Connection is a connected socket held by a service's process.
type Connection struct {
	// PID and FD locate it.
	PID int `json:"pid"`
	FD  int `json:"fd"`
	// Inode is the socket inode.
	Inode uint64 `json:"inode"`
	// Local and Remote are its ends.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// State is the TCP (or unix) state.
	State string `json:"state"`
	// RecvQ and SendQ are the queue sizes in bytes.
	RecvQ uint32 `json:"recv_q"`
	SendQ uint32 `json:"send_q"`
	// Outside is set for a connection accepted from the service's
	// listeners that a process outside the service holds: an sshd session
	// that pam_systemd moved into session-N.scope. Comm and Unit name that
	// process and its unit (set only then).
	Outside bool   `json:"outside,omitempty"`
	Comm    string `json:"comm,omitempty"`
	Unit    string `json:"unit,omitempty"`
}

// Process is one process of a unit.
type Process struct {
	// PID is the process ID.
	PID int `json:"pid"`
	// Comm is its command name.
	Comm string `json:"comm"`
	// Cmdline is its command line, joined by spaces.
	Cmdline string `json:"cmdline"`
	// PreExec marks the manager's forked child that has not exec'd the
	// service yet: it holds copies of the manager's descriptors, none of
	// the service's own, so they are not read as the service's.
	PreExec bool `json:"pre_exec,omitempty"`
}

// Warning is a problem worth an operator's attention.
type Warning struct {
	// Unit is the unit the warning is about.
	Unit string `json:"unit"`
	// Code is a stable identifier: orphan-listener, duplicate-address,
	// flush-pending, fdstore-over-max, fdstore-pinned, leaked-listener.
	Code string `json:"code"`
	// Message says it in words.
	Message string `json:"message"`
}

// EventType names a timeline event.
type EventType string

// Timeline event types.
const (
	EventJobStarted          EventType = "job_started"
	EventJobFinished         EventType = "job_finished"
	EventState               EventType = "state"
	EventMainPID             EventType = "main_pid"
	EventFDPassed            EventType = "fd_passed"
	EventFDStored            EventType = "fd_stored"
	EventFDRemoved           EventType = "fd_removed"
	EventListenerKept        EventType = "listener_kept"
	EventListenerReplaced    EventType = "listener_replaced"
	EventConnectionPreserved EventType = "connection_preserved"
	EventConnectionDropped   EventType = "connection_dropped"
	EventConnectionClosed    EventType = "connection_closed"
	EventHandoff             EventType = "handoff"
	EventUnitNew             EventType = "unit_new"
	EventUnitRemoved         EventType = "unit_removed"
	EventReloading           EventType = "reloading"
	EventDisconnected        EventType = "disconnected"
	EventReconnected         EventType = "reconnected"
)

// Event is one entry of the timeline. Its JSON form is one line of
// `fdtop watch --json` and of a --record file.
type Event struct {
	// Time is when fdtop saw it.
	Time time.Time `json:"time"`
	// Unit is the unit it is about ("" for manager-wide events).
	Unit string `json:"unit"`
	// Target is the host it happened on, as given (-H), when several are
	// watched; "" for the one manager.
	Target string `json:"target,omitempty"`
	// Type says what happened.
	Type EventType `json:"type"`
	// Message is the event in words (Describe), filled where it is printed:
	// the JSON of `fdtop watch --json` and --record files.
	Message string `json:"message,omitempty"`

	// Job is the job type (restart, start, ...) of job events.
	Job string `json:"job,omitempty"`
	// Result is the job result of job_finished (done, failed, ...).
	Result string `json:"result,omitempty"`
	// ActiveState and SubState of state events.
	ActiveState string `json:"active_state,omitempty"`
	SubState    string `json:"sub_state,omitempty"`
	// PID is the process of main_pid, fd and connection events.
	PID int `json:"pid,omitempty"`
	// FD and Name locate a descriptor of fd events.
	FD   int    `json:"fd,omitempty"`
	Name string `json:"name,omitempty"`
	// Inode is the kernel object of fd, listener and connection events.
	Inode uint64 `json:"inode,omitempty"`
	// Detail describes the object (an address, both ends...).
	Detail string `json:"detail,omitempty"`
	// Kind is the kind of descriptor of fd events (tcp, unix, memfd, ...).
	Kind string `json:"kind,omitempty"`
	// Inferred marks an fd_stored entry reconstructed from the manager's
	// descriptors (systemd before 254 cannot list its store).
	Inferred bool `json:"inferred,omitempty"`
	// NameUnknown marks an fd_stored or fd_removed entry whose name was
	// never seen (Name is ""), see StoreEntry.NameUnknown.
	NameUnknown bool `json:"name_unknown,omitempty"`

	// JobID is the manager's job id of job events.
	JobID uint32 `json:"job_id,omitempty"`
	// PrevPID and PrevFD are where a connection was before a handoff, and
	// PrevPID the main PID before a main_pid change.
	PrevPID int `json:"prev_pid,omitempty"`
	PrevFD  int `json:"prev_fd,omitempty"`
	// PrevInode is the listener's inode before it was replaced.
	PrevInode uint64 `json:"prev_inode,omitempty"`
	// Via says how a connection was found preserved ("process": in the new
	// process, "fdstore": held by the manager, "open": its socket still
	// exists), who closed a connection_closed one ("client"), or how an fd left the store ("taken": the new main
	// process holds it).
	Via string `json:"via,omitempty"`
	// Phase is "started" or "finished" for reloading events, "reload" for
	// units a reload added or removed.
	Phase string `json:"phase,omitempty"`
	// UnitsAdded and UnitsGone count what a finished reload changed.
	UnitsAdded int `json:"units_added,omitempty"`
	UnitsGone  int `json:"units_gone,omitempty"`
	// Version is the manager's version on reconnected.
	Version string `json:"version,omitempty"`
	// Error says why on disconnected; Dropped counts coalesced changes.
	Error   string `json:"error,omitempty"`
	Dropped int    `json:"dropped,omitempty"`

	*Handoff
}

// Handoff summarises one restart (or stop and start) of a service: what was
// kept, what was carried and what was lost. It is embedded in the Event of
// type "handoff".
type Handoff struct {
	// Job is the job that caused it (restart, stop+start, ...).
	HandoffJob string `json:"handoff_job"`
	// OldPID and NewPID are the main processes before and after.
	OldPID int `json:"old_pid"`
	NewPID int `json:"new_pid"`
	// ListenersKept counts listeners with the same inode before and after;
	// ListenersReplaced those that were closed and opened anew (a gap).
	ListenersKept     int `json:"listeners_kept"`
	ListenersReplaced int `json:"listeners_replaced"`
	// ListenersUnknown counts listeners whose inode was not seen before or
	// after (the manager's descriptors not readable): neither kept nor
	// replaced.
	ListenersUnknown int `json:"listeners_unknown,omitempty"`
	// ListenersClosed counts listeners held before whose socket unit is
	// down after (failed or stopped): the manager closed them, nobody
	// listens there for the service.
	ListenersClosed int `json:"listeners_closed,omitempty"`
	// Failed is set when the job failed (its result on the event: failed,
	// timeout, dependency, canceled) and left no main process: no handoff
	// took place; the rest says what it cost. ServiceState and
	// ServiceResult are the service's state and result after (e.g. failed,
	// start-limit-hit); SocketsFailed the socket units that failed with it.
	Failed        bool     `json:"failed,omitempty"`
	ServiceState  string   `json:"service_state,omitempty"`
	ServiceResult string   `json:"service_result,omitempty"`
	SocketsFailed []string `json:"sockets_failed,omitempty"`
	// ListenersFromStore names the fd store entries (their FDNAME) through
	// which kept listeners survived: listeners the service stored itself
	// (FDSTORE=1) and got back in LISTEN_FDNAMES, not a socket unit's.
	// Each is also counted in ListenersKept.
	ListenersFromStore []string `json:"listeners_from_store,omitempty"`
	// FDStoreBefore and FDStoreAfter are the store's sizes around the restart.
	FDStoreBefore int `json:"fdstore_before"`
	FDStoreAfter  int `json:"fdstore_after"`
	// ConnectionsPreserved counts connections whose socket lived on in the
	// new process; ConnectionsDropped those that were closed.
	ConnectionsPreserved int `json:"connections_preserved"`
	ConnectionsDropped   int `json:"connections_dropped"`
	// ConnectionsClosed counts connections seen before the job that were
	// gone after, closed by their clients (the kernel says the client's end
	// closed first): not the handoff's doing, in neither count above.
	ConnectionsClosed int `json:"connections_closed,omitempty"`
	// ConnectionsDroppedAtLeast is set when the old process dropped
	// connections and could accept more from its listeners until it
	// exited: connections no view showed (clients reconnecting and dropped
	// again) are not in ConnectionsDropped, which is then a lower bound.
	ConnectionsDroppedAtLeast bool `json:"connections_dropped_at_least,omitempty"`
	// ConnectionsUnknown is set when the service's processes could not be
	// read before or after, or no view showed the old process before the
	// job, or a connection was seen nowhere and the kernel was not asked
	// whether it still existed: the counts above cover only what was seen.
	ConnectionsUnknown bool `json:"connections_unknown,omitempty"`
	// FDsCarried counts descriptors the new process was passed from the store.
	FDsCarried int `json:"fds_carried"`
	// FDsCarriedUnknown is set when the new process's environment could not
	// be read: FDsCarried is 0 because nothing was seen.
	FDsCarriedUnknown bool `json:"fds_carried_unknown,omitempty"`
	// StoreDiscarded is set when the store held descriptors before and the
	// new process got none of them (a stop discards the store before
	// systemd 254, or with FileDescriptorStorePreserve=no).
	StoreDiscarded bool `json:"store_discarded"`
	// NoMainPIDMs is how long the unit had no main process, in milliseconds.
	NoMainPIDMs int64 `json:"no_main_pid_ms"`
	// NoMainPIDUnknown is set when the main PID changed with no signal
	// showing the unit without one: the old process ended first, but for
	// how long was not seen (NoMainPIDMs is 0 then).
	NoMainPIDUnknown bool `json:"no_main_pid_unknown,omitempty"`
	// RefusedDelta is the change of the socket units' NRefused, when counted.
	RefusedDelta int `json:"refused_delta"`
	// DurationMs is the job's duration in milliseconds.
	DurationMs int64 `json:"duration_ms"`
	// Probe holds the gap meter's results when it ran.
	Probe *ProbeResult `json:"probe,omitempty"`
	// Accept is set for a restart (or stop and start) of an Accept=yes
	// socket unit: there is no main process and no store (their fields are
	// 0); the connections are those of its per-connection instances.
	Accept *AcceptHandoff `json:"accept,omitempty"`
}

// AcceptHandoff is what a restart of an Accept=yes socket unit did to the
// per-connection instances running before it. Each instance's connection
// is also counted in the Handoff's connections: preserved when a process
// holds it after (or the kernel says the socket is still open), dropped
// when the socket is gone; neither when it was not seen.
type AcceptHandoff struct {
	// Instances counts the instances running before.
	Instances int `json:"instances"`
	// InstancesKept counts those whose connection the same process holds
	// after.
	InstancesKept int `json:"instances_kept"`
	// InstancesRestarted counts those running after with another process
	// on the same connection (restarted with the socket: the manager keeps
	// an instance's connection and passes it again; the old process's
	// state is gone).
	InstancesRestarted int `json:"instances_restarted"`
	// InstancesStopped counts those no longer running after (stopped with
	// the socket, or ended meanwhile).
	InstancesStopped int `json:"instances_stopped"`
	// InstancesUnknown counts those whose connection was not seen before
	// or after (a process not readable, or the kernel not asked): neither
	// kept nor lost.
	InstancesUnknown int `json:"instances_unknown"`
}

// ProbeResult is what the gap meter saw while a restart ran.
type ProbeResult struct {
	// Attempts, Refused and Failed count connection attempts.
	Attempts int `json:"attempts"`
	Refused  int `json:"refused"`
	Failed   int `json:"failed"`
	// WorstConnectMs is the slowest successful connect in milliseconds.
	WorstConnectMs float64 `json:"worst_connect_ms"`
	// RefusedForMs is the longest time one target refused connects, in
	// milliseconds: from its first refused attempt to the first that
	// succeeded after it (or its last refused one, if none did). Nobody
	// listened for at least about that long; 0 when nothing was refused.
	RefusedForMs float64 `json:"refused_for_ms,omitempty"`
}

// FDStoreUnidentified is how many fd store entries the manager counts that
// FDStore does not list (0 when the list is complete). A Service built
// without FDStoreIdentified (an older recording) counts its entries.
func (s Service) FDStoreUnidentified() int {
	return max(int(s.FDStoreCount)-max(s.FDStoreIdentified, len(s.FDStore)), 0)
}
