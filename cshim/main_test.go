package cshim

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks goroutines and live handles after the package's tests (cshim cannot
// use internal/leakcheck, which imports it).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && LiveHandles() != 0 {
		fmt.Fprintf(os.Stderr, "%d cgo handles still live after the tests\n", LiveHandles())
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
