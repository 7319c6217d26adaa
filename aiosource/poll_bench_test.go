package aiosource_test

import (
	"runtime"
	"testing"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

// BenchmarkPoll measures what Poll itself costs on the loop thread: an idle
// Poll(false); a BH schedule plus the Poll(false) that runs it, on a context attached to
// no GMainContext and on one that is (as MainLoop's and IOThread's are); and a Poll
// nested in a BH callback. These rows are the before/after figures of Poll's home-thread
// check (home.go).
func BenchmarkPoll(b *testing.B) {
	setup := func(b *testing.B, attached bool) *aiosource.Context {
		c, err := aiosource.New()
		if err != nil {
			b.Fatal(err)
		}
		if attached {
			mc := glibloop.NewMainContext()
			c.Attach(mc)
			b.Cleanup(mc.Unref)
		}
		b.Cleanup(func() { c.Close() })
		runtime.LockOSThread()
		b.Cleanup(runtime.UnlockOSThread)
		return c
	}
	b.Run("idle", func(b *testing.B) {
		c := setup(b, false)
		b.ReportAllocs()
		for b.Loop() {
			c.Poll(false)
		}
	})
	for _, attached := range []bool{false, true} {
		name := "bh"
		if attached {
			name = "bh-attached"
		}
		b.Run(name, func(b *testing.B) {
			c := setup(b, attached)
			bh := c.NewBH("bench", func() {})
			defer bh.Delete()
			b.ReportAllocs()
			for b.Loop() {
				bh.Schedule()
				c.Poll(false)
			}
		})
	}
	b.Run("nested", func(b *testing.B) {
		c := setup(b, false)
		bh := c.NewBH("bench", func() { c.Poll(false) })
		defer bh.Delete()
		b.ReportAllocs()
		for b.Loop() {
			bh.Schedule()
			c.Poll(false)
		}
	})
}
