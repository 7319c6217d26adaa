package cshim

import (
	"strings"
	"testing"
)

// GLib calling a trampoline with a key that outlived its source (only a use after free
// could) reaches no Go state: not the released source's, nor that of the source that
// now holds its index. The call is reported as a panic and answered as a source that
// is not ready and removes itself; the trampolines release nothing.
func TestStaleSourceKey(t *testing.T) {
	var panics []*Panic
	SetPanicHandler(func(p *Panic) { panics = append(panics, p) })
	defer SetPanicHandler(nil)

	called := 0
	mk := func() *Source {
		return &Source{
			Prepare:  func() (bool, int32) { called++; return true, 5 },
			Check:    func() bool { called++; return true },
			Dispatch: func() bool { called++; return true },
			Finalize: func() { called++ },
		}
	}
	stale := newSourceKey(mk())
	releaseSourceKey(stale) // what the finalize trampoline does
	reuse := newSourceKey(mk())
	defer releaseSourceKey(reuse)
	if reuse&keyIndexMask != stale&keyIndexMask {
		t.Fatalf("the new source did not take the released index (%#x, %#x)", stale, reuse)
	}
	live := LiveHandles()

	if ready, timeout := sourcePrepare(stale); ready || timeout != -1 {
		t.Errorf("Prepare with a stale key: %v, %d", ready, timeout)
	}
	if sourceCheck(stale) {
		t.Error("Check with a stale key: ready")
	}
	if sourceDispatch(stale) {
		t.Error("Dispatch with a stale key keeps the source")
	}
	sourceFinalize(stale)
	if called != 0 {
		t.Fatalf("a stale key reached a source's functions %d times", called)
	}
	if len(panics) != 4 {
		t.Fatalf("%d panics reported, want 4", len(panics))
	}
	for _, p := range panics {
		if msg, _ := p.Value.(string); !strings.Contains(msg, "stale") || !strings.Contains(p.Callback, "stale key") {
			t.Fatalf("panic %q in %q", p.Value, p.Callback)
		}
	}
	if lookupSource(reuse) == nil || LiveHandles() != live {
		t.Fatal("a stale key's Finalize released the source that reuses its index")
	}

	// The live key still works.
	if ready, timeout := sourcePrepare(reuse); !ready || timeout != 5 || !sourceCheck(reuse) || !sourceDispatch(reuse) {
		t.Fatal("the live key's trampolines do not reach its source")
	}
}
