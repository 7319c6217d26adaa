package cshim

import (
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
