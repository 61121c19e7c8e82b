// Package activation implements the service side of systemd's socket
// activation and notification protocols (sd_listen_fds_with_names(3) and
// sd_pid_notify_with_fds(3)) from scratch, using only golang.org/x/sys/unix.
//
// ListenFDsWithNames collects the file descriptors a manager passed in
// LISTEN_FDS/LISTEN_FDNAMES; a Notifier sends READY=1, STATUS=, FDSTORE=1,
// FDSTOREREMOVE=1 and BARRIER=1 messages over $NOTIFY_SOCKET.
package activation
