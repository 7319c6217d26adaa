//go:build !asan

// AddressSanitizer's instrumentation allocates on its own: allocation counts are checked
// in the other builds.

package glibloop_test

import (
	"testing"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// Steady-state dispatch of Go sources allocates nothing.
func TestDispatchAllocs(t *testing.T) {
	leakcheck.Handles(t)
	for _, tc := range []struct {
		name string
		f    glibloop.SourceFuncs
	}{{"dispatch-only", &benchD{}}, {"prepare-check-dispatch", &benchPCD{}}} {
		_, ours, _ := crossingSetup(t, tc.f, false, false)
		ours(10)
		if a := testing.AllocsPerRun(1000, func() { ours(1) }); a != 0 {
			t.Errorf("%s: %v allocs per dispatch, want 0", tc.name, a)
		}
	}
}
