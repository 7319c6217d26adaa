//go:build !asan

// AddressSanitizer does not follow a switch to another stack by siglongjmp or
// swapcontext (it warns that it may report false positives), so the C switch runs in
// builds without it only.

package benchsuite

import (
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/cbaseline"
)

const asanBuild = false

// The C baselines of enter+yield set up their second stack and switch to it and back.
func TestCSwitchRuns(t *testing.T) {
	for name, f := range map[string]func(int) (time.Duration, error){
		"SigjmpPairs": cbaseline.SigjmpPairs, "SwapcontextPairs": cbaseline.SwapcontextPairs,
	} {
		if d, err := f(1000); err != nil || d <= 0 {
			t.Errorf("%s: %v, %v", name, d, err)
		}
	}
}
