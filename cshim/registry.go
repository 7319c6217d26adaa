package cshim

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
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

// ---- the source table -------------------------------------------------------------------

// The source table holds the *Source of every Go-defined GSource (NewSource,
// NewReactor). C keeps the source's key in the struct that extends GSource (cshim.h):
// an index into the table and the generation of that index, so that a key that outlived
// its source is told apart from the source that reuses its index. C never holds a Go
// pointer, and a trampoline reaches the Go state without a runtime/cgo.Handle (a
// sync.Map lookup per crossing, and an insert and a delete per source).
//
// A lookup takes no lock and touches two cache lines of the table: the chunk pointer, in
// a fixed array, and the index's slot. Making and releasing keys take sources.mu.

// A key packs the index (low keyIndexBits bits) and its generation (the rest).
// Generations start at 1, so no key is 0, which C uses for "none". An index whose
// generation would wrap is retired, never reused, so no stale key can match a later
// source: with 64-bit keys that takes 2^42 uses of one index; with 32-bit ones, 1023.
const (
	keyIndexBits = 22 // 4,194,304 live sources
	keyIndexMask = 1<<keyIndexBits - 1
	keyGenMax    = 1<<(8*unsafe.Sizeof(uintptr(0))-keyIndexBits) - 1
	sourceChunks = (keyIndexMask + 1) / chunkSize
)

// sourceTable's chunks are made as the table grows and never freed or moved. 4096
// pointers: 32 KiB of zero pages until used.
var sourceTable [sourceChunks]atomic.Pointer[[chunkSize]atomic.Pointer[Source]]

var sources struct {
	mu   sync.Mutex
	gens []uintptr // the generation of each index's last key
	free []uint32  // released indexes, reused first
	live int64     // keys made and not released, for LiveHandles
}

// newSourceKey enters src in the source table and returns its key, which is never 0.
func newSourceKey(src *Source) uintptr {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	var id uint32
	if n := len(sources.free); n > 0 {
		id = sources.free[n-1]
		sources.free = sources.free[:n-1]
	} else {
		if len(sources.gens) > keyIndexMask {
			panic(fmt.Sprintf("cshim: more than %d live Go-defined GSources", keyIndexMask+1))
		}
		id = uint32(len(sources.gens))
		sources.gens = append(sources.gens, 0)
		if sourceTable[id/chunkSize].Load() == nil {
			sourceTable[id/chunkSize].Store(new([chunkSize]atomic.Pointer[Source]))
		}
	}
	sources.gens[id]++
	src.key = sources.gens[id]<<keyIndexBits | uintptr(id)
	// Published before the key reaches C: the atomic store orders src.key and the
	// caller's writes to src before any trampoline's Load.
	sourceTable[id/chunkSize].Load()[id%chunkSize].Store(src)
	sources.live++
	return src.key
}

// lookupSource returns the source of key, or nil when the key is not a live one: 0,
// released (its source was finalized), stale (its index now belongs to another source,
// or to none) or never made. It takes no lock and does not allocate.
func lookupSource(key uintptr) *Source {
	id := key & keyIndexMask
	c := sourceTable[id/chunkSize].Load()
	if c == nil {
		return nil
	}
	s := c[id%chunkSize].Load()
	if s == nil || s.key != key {
		return nil
	}
	return s
}

// releaseSourceKey removes key's source from the table. It does nothing for a key that
// is not live, so whoever finalizes the source can call it once, unconditionally.
func releaseSourceKey(key uintptr) {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	if lookupSource(key) == nil {
		return
	}
	id := uint32(key & keyIndexMask)
	sourceTable[id/chunkSize].Load()[id%chunkSize].Store(nil)
	if sources.gens[id] < keyGenMax {
		sources.free = append(sources.free, id)
	}
	sources.live--
}

// liveSources counts the keys made and not released.
func liveSources() int64 {
	sources.mu.Lock()
	defer sources.mu.Unlock()
	return sources.live
}
