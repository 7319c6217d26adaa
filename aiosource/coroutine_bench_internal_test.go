package aiosource

import (
	"iter"
	"runtime"
	"testing"

	"github.com/glibaio/glibaio/cshim"
)

// BenchmarkCoroutineSwitch backs the README's account of what an enter+yield pair
// costs above a bare Go runtime coroutine pair, one piece at a time: the bare pair
// (iter.Pull), the same switch behind one and two more frames on the yielding side
// (each return after a switch is mispredicted: the CPU's return stack holds the other
// side's frames), and Enter with Coroutine.Yield and with the package's Yield.
func BenchmarkCoroutineSwitch(b *testing.B) {
	b.Run("iter.Pull", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		next, stop := iter.Pull(func(yield func(struct{}) bool) {
			for yield(struct{}{}) {
			}
		})
		defer stop()
		for b.Loop() {
			next()
		}
	})
	b.Run("iter.Pull+1frame", func(b *testing.B) { benchPullFrames(b, 1) })
	b.Run("iter.Pull+2frames", func(b *testing.B) { benchPullFrames(b, 2) })
	b.Run("Enter+co.Yield", func(b *testing.B) { benchEnterYield(b, (*Coroutine).Yield) })
	b.Run("Enter+Yield", func(b *testing.B) { benchEnterYield(b, func(*Coroutine) { Yield() }) })
}

//go:noinline
func yieldFrame(yield func(struct{}) bool, frames int) bool {
	if frames > 1 {
		return yieldFrame(yield, frames-1)
	}
	return yield(struct{}{})
}

func benchPullFrames(b *testing.B, frames int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	next, stop := iter.Pull(func(yield func(struct{}) bool) {
		for yieldFrame(yield, frames) {
		}
	})
	defer stop()
	for b.Loop() {
		next()
	}
}

// benchEnterYield enters a coroutine that yields with yield, from inside a walk of no
// context at the caller's level, as a BH would.
func benchEnterYield(b *testing.B, yield func(*Coroutine)) {
	t := currentThread() // locked: acquire keeps the lock for the walk
	t.acquire(nil, cshim.StackMark(), false)
	defer t.leave()
	stop := false
	co := NewCoroutine(func(co *Coroutine) {
		for !stop {
			yield(co)
		}
	})
	co.Enter()
	for b.Loop() {
		co.Enter()
	}
	stop = true
	co.Enter()
}
