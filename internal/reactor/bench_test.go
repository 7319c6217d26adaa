package reactor_test

import (
	"testing"

	"github.com/glibaio/glibaio/internal/testutil"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/reactor"
)

// One non-blocking Wait on a reactor with one idle fd on its poll backend: the cost of
// the ppoll Poll makes each time it looks at the fds.
func BenchmarkReactorWaitZero(b *testing.B) {
	r, err := reactor.New(func([]reactor.Event) {}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	fd := testutil.Eventfd(b)
	if err := r.Add(fd, unix.EPOLLIN, 1); err != nil {
		b.Fatal(err)
	}
	defer r.Delete(fd)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Wait(0); err != nil {
			b.Fatal(err)
		}
	}
}

// A kick seen by a Wait on the poll backend: WaitBegin, Notify (which writes the kick
// eventfd, as the loop is waiting), Wait(0), WaitEnd, NotifyAccept.
func BenchmarkReactorKickedWait(b *testing.B) {
	r, err := reactor.New(func([]reactor.Event) {}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.WaitBegin()
		r.Notify()
		if _, err := r.Wait(0); err != nil {
			b.Fatal(err)
		}
		r.WaitEnd()
		r.NotifyAccept()
	}
}
