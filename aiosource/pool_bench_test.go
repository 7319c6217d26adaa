package aiosource_test

import (
	"runtime"
	"testing"

	"github.com/glibaio/glibaio/aiosource"
)

// One request at a time: Submit, then Poll(true) until its done ran.
func BenchmarkSubmitRoundTrip(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := aiosource.New()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n := 0
	work := func() error { return nil }
	done := func(error) { n++ }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Submit(work, done)
		for n <= i {
			c.Poll(true)
		}
	}
}

// 64 requests at a time, then Poll(true) until every done ran.
func BenchmarkSubmitBatch64(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c, err := aiosource.New()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n := 0
	work := func() error { return nil }
	done := func(error) { n++ }
	b.ReportAllocs()
	for b.Loop() {
		n = 0
		for range 64 {
			c.Submit(work, done)
		}
		for n < 64 {
			c.Poll(true)
		}
	}
	st := c.Stats()
	b.ReportMetric(float64(st.Kicks)/float64(b.N), "kicks/op")
	b.ReportMetric(float64(st.Polls)/float64(b.N), "polls/op")
}
