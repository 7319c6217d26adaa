//go:build !race && !asan

// The race detector's and AddressSanitizer's instrumentation allocate on their own, so
// allocation counts are checked in normal builds only (make test runs them in a second,
// non-race pass).

package benchsuite

import (
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// The io_uring read rows' loops allocate nothing per read in steady state, at queue
// depth 1 and 32: a read's slot, pin and SQE are reused, its callback bound once.
func TestURingReadAllocs(t *testing.T) {
	leakcheck.Handles(t)
	rf, err := NewReadFile("")
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	for _, qd := range []int{1, 32} {
		l, err := NewReadLoop(rf, qd)
		if err != nil {
			t.Fatal(err)
		}
		l.Ring(1000)
		if n := testing.AllocsPerRun(10, func() { l.Ring(1000) }); n != 0 {
			t.Errorf("queue depth %d: %v allocations per 1000 reads, want 0", qd, n)
		}
		if err := l.Err(); err != nil {
			t.Error(err)
		}
		l.Close()
	}
}
