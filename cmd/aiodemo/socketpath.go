package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketID identifies the socket file a server bound: its device and inode. At
// shutdown the server removes the path only if it still names that file.
type socketID struct{ dev, ino uint64 }

func statSocketID(fi os.FileInfo) socketID {
	st := fi.Sys().(*syscall.Stat_t)
	return socketID{dev: uint64(st.Dev), ino: st.Ino}
}

// errServerListening is wrapped by bindUnixSocket's error when a live server answers
// on the path.
var errServerListening = errors.New("another server is listening")

// lockSocketDir takes an exclusive flock(2) on the socket's directory, so that servers
// that start (or stop) at the same time on one path look at it and change it one at a
// time: without it, two servers could both find a stale socket, and the second would
// remove the socket the first had just bound. The lock lives on the directory itself,
// so nothing is left behind.
func lockSocketDir(path string) (unlock func(), err error) {
	dir := filepath.Dir(path)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the socket's directory %s: %w", dir, err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock the socket's directory %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil // closing the fd drops the lock
}

// probeSocket connects to the unix socket at path and reports whether a server
// answers. A full backlog (EAGAIN) is a live server too, only a busy one; a refused
// connection is a stale socket that nobody listens on.
func probeSocket(path string) (live bool, err error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("probe %s: %w", path, os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	switch err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); {
	case err == nil, errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINPROGRESS):
		return true, nil
	case errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.ENOENT):
		return false, nil
	default:
		return false, fmt.Errorf("probe %s: %w", path, os.NewSyscallError("connect", err))
	}
}

// bindUnixSocket binds a new listening socket at path, created with mode 0600, and
// loses nothing that is already there:
//   - a path that exists and is not a socket is refused and left untouched;
//   - an existing socket is probed first: if a server answers, the bind is refused
//     (the error wraps errServerListening); if not, the stale socket is removed;
//
// all under the directory lock (lockSocketDir), the listen(2) included: a socket bound
// but not yet listening refuses connections, so a second server that probed it between
// the two calls would take it for stale and remove it. It returns the listening socket
// fd and the identity of the file bound.
func bindUnixSocket(path string) (int, socketID, error) {
	unlock, err := lockSocketDir(path)
	if err != nil {
		return -1, socketID{}, err
	}
	defer unlock()
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return -1, socketID{}, fmt.Errorf("%s exists and is not a socket (%s); refusing to replace it", path, fileKind(fi))
		}
		live, err := probeSocket(path)
		if err != nil {
			return -1, socketID{}, err
		}
		if live {
			return -1, socketID{}, fmt.Errorf("%w on %s", errServerListening, path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return -1, socketID{}, fmt.Errorf("remove the stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return -1, socketID{}, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, socketID{}, os.NewSyscallError("socket", err)
	}
	// The umask makes bind create the socket 0600, with no window where others could
	// connect. It is process-wide, which is fine at start-up.
	old := syscall.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	syscall.Umask(old)
	if err != nil {
		unix.Close(fd)
		return -1, socketID{}, fmt.Errorf("bind %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err == nil {
		if err = os.NewSyscallError("listen", unix.Listen(fd, 1024)); err != nil {
			os.Remove(path) // ours: bound above, under the lock
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, socketID{}, err
	}
	return fd, statSocketID(fi), nil
}

// removeOwnSocket removes path if it is still the socket this server bound (same
// device and inode); a path that another server took over meanwhile is left alone.
// It reports whether it removed the file, and why not. Call it while the socket is
// still open: the open socket keeps its inode from being reused.
func removeOwnSocket(path string, id socketID) (bool, string) {
	unlock, err := lockSocketDir(path)
	if err != nil {
		return false, err.Error()
	}
	defer unlock()
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, "already gone"
	case err != nil:
		return false, err.Error()
	case statSocketID(fi) != id:
		return false, "the path now names another file"
	}
	if err := os.Remove(path); err != nil {
		return false, err.Error()
	}
	return true, ""
}

func fileKind(fi os.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return fi.Mode().Type().String()
}
