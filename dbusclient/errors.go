package dbusclient

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// ErrNoSuchUnit is returned (wrapped in a *UnitError) when the manager does
// not know the unit: it is not loaded, or no unit file has that name.
var ErrNoSuchUnit = errors.New("no such unit")

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("dbusclient: client closed")

// ErrNotConnected is returned (wrapped) by calls made while the connection
// to the manager is lost and its process is gone. The Disconnected event of
// every Subscription reports the loss itself.
var ErrNotConnected = errors.New("not connected to the manager")

// UnitError says which unit an operation failed on.
type UnitError struct {
	Op   string // e.g. "restart", "read"
	Unit string
	Err  error
}

// Error says what failed on which unit.
func (e *UnitError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Unit, e.Err) }

// Unwrap returns the cause.
func (e *UnitError) Unwrap() error { return e.Err }

// AccessDeniedError is returned when the manager (polkit, on the system bus)
// refuses an action.
type AccessDeniedError struct {
	Op      string
	Unit    string
	Message string // the manager's own text
}

// Error says what was refused and what to do about it.
func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("%s %s: access denied (run as root or check polkit's org.freedesktop.systemd1.manage-units): %s", e.Op, e.Unit, e.Message)
}

// JobFailedError is returned by actions whose job finished with a result
// other than done.
type JobFailedError struct {
	Op         string
	Unit       string
	Result     JobResult // the job's result: failed, canceled, timeout, dependency, ...
	UnitResult string    // the unit's Result property, e.g. "exit-code"; "" if unknown
}

// Error says how the job ended and why the unit says it failed.
func (e *JobFailedError) Error() string {
	s := fmt.Sprintf("%s %s: job %s", e.Op, e.Unit, e.Result)
	if e.UnitResult != "" && e.UnitResult != "success" {
		s += " (unit result: " + e.UnitResult + ")"
	}
	return s
}

// dbusErrorName returns the D-Bus error name of err, or "".
func dbusErrorName(err error) string {
	var v dbus.Error
	if errors.As(err, &v) {
		return v.Name
	}
	var p *dbus.Error
	if errors.As(err, &p) && p != nil {
		return p.Name
	}
	return ""
}

// dbusErrorMessage returns the text of a D-Bus error, or err.Error().
func dbusErrorMessage(err error) string {
	var v dbus.Error
	if errors.As(err, &v) && len(v.Body) > 0 {
		if s, ok := v.Body[0].(string); ok {
			return s
		}
	}
	return err.Error()
}

const (
	errNameNoSuchUnit   = "org.freedesktop.systemd1.NoSuchUnit"
	errNameAccessDenied = "org.freedesktop.DBus.Error.AccessDenied"
	errNameInteractive  = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	errNameUnknownObj   = "org.freedesktop.DBus.Error.UnknownObject"
	errNameUnknownProp  = "org.freedesktop.DBus.Error.UnknownProperty"
	errNameUnknownMeth  = "org.freedesktop.DBus.Error.UnknownMethod"
	errNameInvalidArgs  = "org.freedesktop.DBus.Error.InvalidArgs"
)

// unitErr turns a manager error about unit into a typed error.
func unitErr(op, unit string, err error) error {
	switch dbusErrorName(err) {
	case errNameNoSuchUnit:
		return &UnitError{Op: op, Unit: unit, Err: fmt.Errorf("%w: %s", ErrNoSuchUnit, dbusErrorMessage(err))}
	case errNameAccessDenied, errNameInteractive:
		return &AccessDeniedError{Op: op, Unit: unit, Message: dbusErrorMessage(err)}
	}
	return &UnitError{Op: op, Unit: unit, Err: err}
}
