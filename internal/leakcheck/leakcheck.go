// Package leakcheck is the tests' leak detector: goroutines (go.uber.org/goleak) and
// live cgo handles (sources, typed callbacks, stored panics), per test and per package.
package leakcheck

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/glibaio/glibaio/cshim"
)

// Main runs the package's tests, then fails the run if a goroutine or a cgo handle
// outlived them. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has its own cleanup: it returns the exit code.
func Run(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if n := cshim.LiveHandles(); n != 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: %d cgo handles still live after the tests\n", n)
			code = 1
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: %v\n", err)
			code = 1
		}
	}
	return code
}

// Handles fails t if it ends with more live cgo handles than it began with. Call it
// first in a test: its check runs after every other cleanup.
func Handles(t testing.TB) {
	t.Helper()
	before := cshim.LiveHandles()
	t.Cleanup(func() {
		if after := cshim.LiveHandles(); after != before {
			t.Errorf("leakcheck: %d cgo handles live before the test, %d after", before, after)
		}
	})
}
