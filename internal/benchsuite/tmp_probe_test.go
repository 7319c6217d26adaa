package benchsuite

import (
	"testing"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim/cbaseline"
	"github.com/glibaio/glibaio/glibloop"
)

func BenchmarkProbe(b *testing.B) {
	b.Run("bh+iter", func(b *testing.B) {
		bi, _ := NewBHIteration()
		defer bi.Close()
		b.ResetTimer()
		bi.Run(b.N)
	})
	b.Run("C-driven-self-resched-bh", func(b *testing.B) {
		mc := glibloop.NewMainContext()
		defer mc.Unref()
		c, _ := aiosource.New()
		defer c.Close()
		c.Attach(mc)
		var bh *aiosource.BH
		bh = c.NewBH("x", func() { bh.Schedule() })
		defer bh.Delete()
		bh.Schedule()
		b.ResetTimer()
		cbaseline.Iterate(mc.Native(), b.N)
	})
	b.Run("C-driven-self-resched-bh-nostats", func(b *testing.B) {
		glibloop.SetCallbackStats(false)
		defer glibloop.SetCallbackStats(true)
		mc := glibloop.NewMainContext()
		defer mc.Unref()
		c, _ := aiosource.New()
		defer c.Close()
		c.Attach(mc)
		var bh *aiosource.BH
		bh = c.NewBH("x", func() { bh.Schedule() })
		defer bh.Delete()
		bh.Schedule()
		b.ResetTimer()
		cbaseline.Iterate(mc.Native(), b.N)
	})
	b.Run("C-iter-empty-aio", func(b *testing.B) {
		mc := glibloop.NewMainContext()
		defer mc.Unref()
		c, _ := aiosource.New()
		defer c.Close()
		c.Attach(mc)
		b.ResetTimer()
		cbaseline.Iterate(mc.Native(), b.N)
	})
	b.Run("C-iter-bare-ctx", func(b *testing.B) {
		mc := glibloop.NewMainContext()
		defer mc.Unref()
		b.ResetTimer()
		cbaseline.Iterate(mc.Native(), b.N)
	})
}
