package cshim

import (
	"sync"
	"sync/atomic"
)

// The callback registry holds the Go functions of typed callback sources (idle,
// timeout, unix fd, invoke). C keeps a small integer id instead of a pointer. Lookups,
// which happen on every dispatch, take no lock: slots live in fixed chunks that never
// move, published through an atomic pointer. Registering and releasing take a mutex.
// It is cheaper than a cgo.Handle (a sync.Map insert and delete per callback), which
// matters for IdleAdd, where one callback is made and released per call.

const chunkSize = 1024

type callback struct {
	fn   func() bool
	fdfn func(fd int, cond uint) bool
}

// slot is one id's entry. cb is published while the id is live; spare is the callback
// it reuses from one registration to the next, so registering allocates nothing once
// the id has been used (IdleAdd makes one callback per call).
type slot struct {
	cb    atomic.Pointer[callback]
	spare *callback // under registry.mu
}

type chunk [chunkSize]slot

var registry struct {
	chunks atomic.Pointer[[]*chunk]
	mu     sync.Mutex
	free   []uint32 // released ids, reused first
	next   uint32   // ids below next have been handed out
	live   int64    // registered and not released, for LiveHandles
}

func slotOf(id uint32) *slot { return &(*registry.chunks.Load())[id/chunkSize][id%chunkSize] }

// register stores fn (or fdfn) and returns its id, which is never 0.
func register(fn func() bool, fdfn func(fd int, cond uint) bool) uintptr {
	registry.mu.Lock()
	var id uint32
	if n := len(registry.free); n > 0 {
		id = registry.free[n-1]
		registry.free = registry.free[:n-1]
	} else {
		id = registry.next
		registry.next++
		var cs []*chunk
		if p := registry.chunks.Load(); p != nil {
			cs = *p
		}
		if int(id/chunkSize) == len(cs) {
			grown := append(append([]*chunk(nil), cs...), new(chunk))
			registry.chunks.Store(&grown)
		}
	}
	s := slotOf(id)
	cb := s.spare
	if cb == nil {
		cb = new(callback)
		s.spare = cb
	}
	cb.fn, cb.fdfn = fn, fdfn
	// Published before the id reaches C, so a dispatch always finds it; the atomic
	// store orders the writes above before the dispatching thread's Load.
	s.cb.Store(cb)
	registry.live++
	registry.mu.Unlock()
	return uintptr(id) + 1
}

func lookup(id uintptr) *callback { return slotOf(uint32(id - 1)).cb.Load() }

// release forgets id. No lookup of id may follow (C clears its copy first).
func release(id uintptr) {
	i := uint32(id - 1)
	s := slotOf(i)
	s.cb.Store(nil)
	registry.mu.Lock()
	s.spare.fn, s.spare.fdfn = nil, nil // drop the closures for the collector
	registry.free = append(registry.free, i)
	registry.live--
	registry.mu.Unlock()
}

// registeredCallbacks counts the live typed callbacks.
func registeredCallbacks() int64 {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return registry.live
}
