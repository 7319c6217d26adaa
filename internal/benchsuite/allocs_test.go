//go:build !race && !asan

// The race detector's and AddressSanitizer's instrumentation allocate on their own, so
// allocation counts are checked in normal builds only (make test runs them in a second,
// non-race pass).

package benchsuite

import (
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// The steady-state hot paths allocate nothing.
func TestSteadyStateAllocs(t *testing.T) {
	leakcheck.Handles(t)
	as := Allocs()
	if len(as) != 8 {
		t.Fatalf("%d allocation measurements, want 8", len(as))
	}
	for _, a := range as {
		if a.PerOp != 0 {
			t.Errorf("%s: %v allocs/op, want 0", a.Name, a.PerOp)
		}
	}
}
