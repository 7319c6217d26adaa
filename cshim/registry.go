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

type chunk [chunkSize]atomic.Pointer[callback]

var registry struct {
	chunks atomic.Pointer[[]*chunk]
	mu     sync.Mutex
	free   []uint32 // released ids, reused first
	next   uint32   // ids below next have been handed out
}

// register stores cb and returns its id, which is never 0.
func register(cb *callback) uintptr {
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
	// Published before the id reaches C, so a dispatch always finds it.
	(*registry.chunks.Load())[id/chunkSize][id%chunkSize].Store(cb)
	registry.mu.Unlock()
	liveHandles.Add(1)
	return uintptr(id) + 1
}

func lookup(id uintptr) *callback {
	i := uint32(id - 1)
	return (*registry.chunks.Load())[i/chunkSize][i%chunkSize].Load()
}

func release(id uintptr) {
	i := uint32(id - 1)
	(*registry.chunks.Load())[i/chunkSize][i%chunkSize].Store(nil)
	registry.mu.Lock()
	registry.free = append(registry.free, i)
	registry.mu.Unlock()
	liveHandles.Add(-1)
}
