package benchsuite

import (
	"testing"

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
	b.Run("iter-empty-aio", func(b *testing.B) {
		bi, _ := NewBHIteration()
		defer bi.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			bi.mc.Iteration(false)
		}
	})
	b.Run("C-iter-empty-aio", func(b *testing.B) {
		bi, _ := NewBHIteration()
		defer bi.Close()
		b.ResetTimer()
		cbaseline.Iterate(bi.mc.Native(), b.N)
	})
	b.Run("C-iter-bare-ctx", func(b *testing.B) {
		mc := glibloop.NewMainContext()
		defer mc.Unref()
		b.ResetTimer()
		cbaseline.Iterate(mc.Native(), b.N)
	})
}
