package apicheck_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The library packages compile no toolkit: only programs that import an adapter
// (glibloop/gotk3) or a toolkit themselves pay for gotk3 or gotk4.
func TestLibraryDependsOnNoToolkit(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./glibloop", "./aiosource", "./coroutine")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), "github.com/glibaio/glibaio/cshim") {
		t.Fatalf("go list -deps listed only %d packages, without cshim: %q", len(deps), out)
	}
	for _, d := range deps {
		if strings.Contains(d, "gotk3") || strings.Contains(d, "gotk4") {
			t.Errorf("glibloop, aiosource or coroutine depends on %s", d)
		}
	}
}
