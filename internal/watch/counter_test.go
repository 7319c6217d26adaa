package watch

import (
	"sync"
	"testing"
)

// TestCounter adds from one goroutine at a time while others read: every read is a
// count the counter had (never more than the adds so far, never less than an earlier
// read), and the last is exact.
func TestCounter(t *testing.T) {
	var c Counter
	const adds = 100000
	var mu sync.Mutex // the writers' own synchronization, as Counter requires
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := c.Load()
				if v < last || v > adds {
					t.Errorf("read %d after %d (of %d adds)", v, last, adds)
					return
				}
				last = v
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := w; i < adds; i += 2 {
				mu.Lock()
				c.Add(1)
				mu.Unlock()
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if got := c.Load(); got != adds {
		t.Fatalf("count %d, want %d", got, adds)
	}
	if got := c.Add(5); got != adds+5 {
		t.Fatalf("Add returned %d, want %d", got, adds+5)
	}
}
