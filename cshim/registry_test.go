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

// Source keys resolve to their source until released; a released key, and a key of an
// index that another source now holds, resolve to nothing; indexes are reused with the
// next generation; forged keys resolve to nothing.
func TestSourceKeys(t *testing.T) {
	before := LiveHandles()
	a, b := &Source{}, &Source{}
	ka, kb := newSourceKey(a), newSourceKey(b)
	if ka == 0 || kb == 0 || ka == kb {
		t.Fatalf("keys %#x, %#x", ka, kb)
	}
	if lookupSource(ka) != a || lookupSource(kb) != b {
		t.Fatal("a live key does not resolve to its source")
	}
	if LiveHandles() != before+2 {
		t.Fatalf("live handles %d, want %d", LiveHandles(), before+2)
	}
	releaseSourceKey(ka)
	if lookupSource(ka) != nil {
		t.Fatal("a released key still resolves")
	}
	releaseSourceKey(ka) // a second release does nothing
	if LiveHandles() != before+1 {
		t.Fatalf("live handles %d after releasing one of two, want %d", LiveHandles(), before+1)
	}

	c := &Source{}
	kc := newSourceKey(c) // reuses a's index
	if kc&keyIndexMask != ka&keyIndexMask || kc>>keyIndexBits != ka>>keyIndexBits+1 {
		t.Fatalf("key %#x after releasing %#x: want the same index, next generation", kc, ka)
	}
	if lookupSource(ka) != nil {
		t.Fatal("a stale key resolves to the source that reuses its index")
	}
	if lookupSource(kc) != c {
		t.Fatal("the new key does not resolve")
	}
	releaseSourceKey(ka) // stale: must not release c
	if lookupSource(kc) != c {
		t.Fatal("releasing a stale key released the source that reuses its index")
	}

	for _, k := range []uintptr{
		0,
		kc + 1<<keyIndexBits,              // a generation not made yet
		kc&keyIndexMask | 1<<keyIndexBits, // the index's first generation
		uintptr(len(sources.gens)) | 1<<keyIndexBits,               // an index never handed out
		uintptr(keyIndexMask) | 1<<keyIndexBits,                    // the last index, in a chunk never made
		uintptr(sourceChunks-1)*chunkSize | 5<<keyIndexBits | 0x77, // the same, another way
	} {
		if s := lookupSource(k); s != nil {
			t.Fatalf("forged key %#x resolves", k)
		}
	}
	releaseSourceKey(kb)
	releaseSourceKey(kc)
	if LiveHandles() != before {
		t.Fatalf("live handles %d, want %d", LiveHandles(), before)
	}
}

// An index whose generation would wrap is retired: a stale key can never match a later
// source, however many times an index is reused.
func TestSourceKeyRetired(t *testing.T) {
	s := &Source{}
	k := newSourceKey(s)
	id := k & keyIndexMask
	sources.mu.Lock()
	sources.gens[id] = keyGenMax - 1 // as if the index had been used that often
	sources.mu.Unlock()
	releaseSourceKey(k)
	k = newSourceKey(s) // same index, generation keyGenMax
	if k&keyIndexMask != id || k>>keyIndexBits != keyGenMax {
		t.Fatalf("key %#x, want index %d at generation %d", k, id, uint64(keyGenMax))
	}
	releaseSourceKey(k)
	k2 := newSourceKey(&Source{})
	if k2&keyIndexMask == id {
		t.Fatalf("index %d reused after its last generation", id)
	}
	releaseSourceKey(k2)
}

// Keys are made, looked up and released from many goroutines at once (run with -race).
func TestSourceKeysConcurrent(t *testing.T) {
	before := LiveHandles()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				s := &Source{}
				k := newSourceKey(s)
				if lookupSource(k) != s {
					t.Error("a live key resolves to another source")
					return
				}
				releaseSourceKey(k)
				if lookupSource(k) == s {
					t.Error("a released key resolves")
					return
				}
			}
		}()
	}
	wg.Wait()
	if LiveHandles() != before {
		t.Fatalf("live handles %d, want %d", LiveHandles(), before)
	}
}
