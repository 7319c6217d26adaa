package cshim

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// Ids are reused after release, never 0, and lookups see what register stored, also
// across goroutines and chunk boundaries.
func TestRegistry(t *testing.T) {
	before := LiveHandles()
	var ids []uintptr
	for i := 0; i < 3*chunkSize; i++ {
		i := i
		id := register(func() bool { return i%2 == 0 }, nil)
		if id == 0 {
			t.Fatal("register returned id 0")
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		if got := lookup(id).fn(); got != (i%2 == 0) {
			t.Fatalf("lookup(%d) returned another callback", id)
		}
	}
	for _, id := range ids {
		release(id)
	}
	reused := register(nil, nil)
	if reused > uintptr(3*chunkSize) {
		t.Fatalf("released ids were not reused: got %d", reused)
	}
	release(reused)

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				want := i
				id := register(nil, func(fd int, _ uint) bool { return fd == want })
				if !lookup(id).fdfn(want, 0) {
					t.Error("concurrent lookup returned another callback")
					return
				}
				release(id)
			}
		}()
	}
	wg.Wait()
	if LiveHandles() != before {
		t.Fatalf("live handles %d, want %d", LiveHandles(), before)
	}
}

func TestPanicErrorText(t *testing.T) {
	base := errors.New("root cause")
	p := &PanicError{Value: base, Stack: []byte("goroutine 1 [running]:"), Callback: "Dispatch of source \"x\"",
		Next: &PanicError{Value: "second", Callback: "Check"}}
	if !errors.Is(p, base) {
		t.Fatal("errors.Is does not see the panic value")
	}
	msg := p.Error()
	for _, want := range []string{"Dispatch of source \"x\"", "root cause", "goroutine 1", "and then panic in Check: second"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("Error() = %q, want it to contain %q", msg, want)
		}
	}
	if (&PanicError{Value: 1}).Unwrap() != nil {
		t.Fatal("Unwrap of a non-error value should be nil")
	}
}
