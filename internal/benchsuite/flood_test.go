package benchsuite

import (
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/glibloop"
)

// TestFloodRounds prints the oneshot flood's rounds one by one against gotk3's, as
// aiobench measures them, with what the loop did: eventfd writes, dispatches, and how
// often its poll's spin found work (GLIBAIO_FLOOD=ROUNDS runs it). It measures; it
// asserts only that every oneshot ran (OneshotFlood waits for them).
func TestFloodRounds(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("GLIBAIO_FLOOD"))
	if rounds <= 0 {
		t.Skip("GLIBAIO_FLOOD=ROUNDS runs it")
	}
	mc := glibloop.NewMainContext()
	defer mc.Unref()
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Attach(mc)
	per := floodPer(QuickConfig())
	runtime.LockOSThread() // the spin's budget and hits are the thread's
	defer runtime.UnlockOSThread()
	var rs []float64
	for i := 0; i < rounds; i++ {
		st0, h0 := c.Stats(), cshim.SpinHits()
		ob := float64(OneshotFlood(c, mc, 4, per))
		st1, h1 := c.Stats(), cshim.SpinHits()
		gb := float64(Gotk3Flood(4, per/10))
		rs = append(rs, ob/gb)
		t.Logf("round %2d: %6.0f ns/event (%5d kicks, %5d dispatches, %4d spins found work, budget %5d ns), gotk3 %6.0f ns: %.3fx",
			i, ob, st1.Kicks-st0.Kicks, st1.Dispatches-st0.Dispatches, h1-h0, cshim.SpinBudget(), gb, ob/gb)
	}
	t.Logf("median %.3fx, range %.3f-%.3f, <= 0.05x in %d of %d", Median(rs), Percentile(rs, 0), Percentile(rs, 100), countLE(rs, 0.05), len(rs))
}

func countLE(v []float64, x float64) int {
	n := 0
	for _, f := range v {
		if f <= x {
			n++
		}
	}
	return n
}
