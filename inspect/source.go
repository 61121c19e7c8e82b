package inspect

import (
	"context"

	"github.com/fdtop/fdtop/dbusclient"
	"github.com/fdtop/fdtop/procfs"
)

// Systemd is what inspect needs from the service manager;
// *dbusclient.Client has it.
type Systemd interface {
	// Load reads the socket units matching patterns and the services they
	// trigger, plus every service with an fd store.
	Load(ctx context.Context, patterns []string, all bool) (*dbusclient.State, error)
	// ListServices reads the named services (plus every fd-store service).
	ListServices(ctx context.Context, names []string) ([]dbusclient.Service, error)
	// FDStore reads a service's fd store (entries on systemd 254+).
	FDStore(ctx context.Context, service string) (dbusclient.FDStore, error)
	// Processes lists a unit's processes.
	Processes(ctx context.Context, unit string) ([]dbusclient.Process, error)
	// Version is the manager's version.
	Version() string
	// Features says what the manager can do.
	Features() dbusclient.Features
	// Endpoint is the D-Bus address in use.
	Endpoint() dbusclient.Endpoint
}

// Kernel is what inspect needs from /proc; procfs.FS has it.
type Kernel interface {
	// Scan reads every process with its descriptors and every socket.
	Scan(ctx context.Context, opts procfs.ScanOptions) (*procfs.Scan, error)
	// ScanPIDs reads only the given processes and the sockets they hold.
	ScanPIDs(ctx context.Context, pids []int, opts procfs.ScanOptions) (*procfs.Scan, error)
}

var (
	_ Systemd = (*dbusclient.Client)(nil)
	_ Kernel  = procfs.FS{}
)
