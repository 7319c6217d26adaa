package aiosource_test

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

func writeFD(fd int, b []byte) (int, error) { return unix.Write(fd, b) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
