package aiosource

import (
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

// checkRingInvariants checks the slot states between head and tail and the held count.
func checkRingInvariants(t *testing.T, c *Context) {
	t.Helper()
	q := &c.oneshots
	tail := q.tail.Load()
	if tail < q.head || tail-q.head > oneshotRingSize {
		t.Fatalf("head %d tail %d", q.head, tail)
	}
	if f := q.freed.Load(); f > q.head || f != q.pub {
		t.Fatalf("freed %d, published %d, head %d", f, q.pub, q.head)
	}
	held := 0
	for pos := q.head; pos < tail; pos++ {
		if q.consumed(pos) {
			if pos == q.head {
				t.Fatalf("head slot %d is held", pos)
			}
			held++
		}
	}
	if held != q.held {
		t.Fatalf("held %d counted %d", q.held, held)
	}
}

// A random single-threaded model of the ring: pushes, producers stalled between claim
// and write and finished in any order (some from callbacks), nested Polls, panics, and
// callbacks that schedule more. Half the seeds poll rarely, so the ring fills and holds
// many slots. After every step the slot states and the held count must be consistent,
// nothing may run before it is written or run twice, and at the end all ran, nothing is
// ready and nothing is pending.
func TestOneshotRingModel(t *testing.T) {
	leakcheck.Handles(t)
	seeds := int64(20)
	if os.Getenv("GLIBAIO_STRESS") == "full" {
		seeds = 200
	}
	fullSteps, maxHeld := 0, 0
	defer func() { t.Logf("full steps %d, max held %d", fullSteps, maxHeld) }()
	for seed := int64(0); seed < seeds; seed++ {
		rng := rand.New(rand.NewSource(seed))
		pollEvery := 1
		if seed%2 == 1 {
			pollEvery = 40
		}
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		runs := map[int]int{}
		returned := map[int]bool{} // ScheduleOneshot "returned" (written)
		var stalls []func()
		var stallIDs []int
		next := 0
		var mk func(id int, depth int) func()
		mk = func(id, depth int) func() {
			return func() {
				runs[id]++
				if !returned[id] {
					t.Fatalf("seed %d: %d ran before written", seed, id)
				}
				switch r := rng.Intn(10); {
				case r == 0 && depth < 4:
					id2 := next
					next++
					returned[id2] = true
					c.ScheduleOneshot(mk(id2, depth+1))
				case r == 1 && depth < 4:
					func() {
						defer func() { recover() }()
						c.Poll(false)
					}()
				case r == 2:
					panic("boom")
				case r == 3 && len(stalls) > 0:
					i := rng.Intn(len(stalls))
					returned[stallIDs[i]] = true
					stalls[i]()
					stalls = append(stalls[:i], stalls[i+1:]...)
					stallIDs = append(stallIDs[:i], stallIDs[i+1:]...)
				case r == 4 && depth < 4:
					id2 := next
					next++
					if finish, ok := tryStall(c, mk(id2, depth+1)); ok {
						stalls = append(stalls, finish)
						stallIDs = append(stallIDs, id2)
					}
				}
			}
		}
		poll := func() (p bool) {
			defer func() {
				if recover() != nil {
					p = true
				}
			}()
			return c.Poll(false)
		}
		for step := 0; step < 3000; step++ {
			switch r := rng.Intn(10); {
			case r < 5:
				id := next
				next++
				returned[id] = true
				c.ScheduleOneshot(mk(id, 0))
			case r == 5:
				id := next
				next++
				if finish, ok := tryStall(c, mk(id, 0)); ok {
					stalls = append(stalls, finish)
					stallIDs = append(stallIDs, id)
				}
			case r == 6 && len(stalls) > 0:
				i := rng.Intn(len(stalls))
				returned[stallIDs[i]] = true
				stalls[i]()
				stalls = append(stalls[:i], stalls[i+1:]...)
				stallIDs = append(stallIDs[:i], stallIDs[i+1:]...)
			default:
				if rng.Intn(pollEvery) == 0 {
					poll()
				}
			}
			if c.oneshots.tail.Load()-c.oneshots.head == oneshotRingSize {
				fullSteps++
			}
			if c.oneshots.held > maxHeld {
				maxHeld = c.oneshots.held
			}
			checkRingInvariants(t, c)
			for id, n := range runs {
				if n > 1 {
					t.Fatalf("seed %d: %d ran %d times", seed, id, n)
				}
			}
		}
		for len(stalls) > 0 {
			returned[stallIDs[0]] = true
			stalls[0]()
			stalls, stallIDs = stalls[1:], stallIDs[1:]
			for i := 0; i < 10000 && poll(); i++ {
			}
		}
		for i := 0; i < 100000 && (poll() || c.oneshots.ready() || c.bhList.Load() != nil || len(stalls) > 0); i++ {
			for len(stalls) > 0 {
				returned[stallIDs[0]] = true
				stalls[0]()
				stalls, stallIDs = stalls[1:], stallIDs[1:]
			}
		}
		checkRingInvariants(t, c)
		for id := 0; id < next; id++ {
			if returned[id] && runs[id] != 1 {
				t.Fatalf("seed %d: %d ran %d times", seed, id, runs[id])
			}
		}
		if c.oneshots.ready() || c.computeTimeout() == 0 {
			t.Fatalf("seed %d: ready after all ran", seed)
		}
		if n := c.pendingOneshots(); n != 0 {
			t.Fatalf("seed %d: pending %d", seed, n)
		}
		c.Close()
	}
}

// Concurrent producers, some descheduled between claim and write, against a loop whose
// callbacks run nested Polls: every oneshot runs exactly once.
func TestOneshotRingConcurrentNested(t *testing.T) {
	leakcheck.Handles(t)
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const P, N = 4, 5000
	var ran [P * N]atomic.Int32
	var total atomic.Int64
	var wg sync.WaitGroup
	depth := 0
	for p := 0; p < P; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < N; i++ {
				id := p*N + i
				c.ScheduleOneshot(func() {
					if ran[id].Add(1) != 1 {
						panic("dup")
					}
					total.Add(1)
					if id%97 == 0 && depth < 3 {
						depth++
						c.Poll(false)
						depth--
					}
				})
				if i%50 == 0 {
					time.Sleep(time.Microsecond)
				}
			}
		}(p)
	}
	// Loop until every oneshot ran. A lost wakeup would leave Poll(true) asleep with work
	// queued: the rescue then fails the test instead of letting it hang.
	var lost atomic.Bool
	rescue := time.AfterFunc(60*time.Second, func() { lost.Store(true); c.Notify() })
	for total.Load() != P*N && !lost.Load() {
		c.Poll(true)
	}
	rescue.Stop()
	wg.Wait()
	if lost.Load() {
		t.Fatalf("Poll slept with %d of %d oneshots run: a lost wakeup", total.Load(), P*N)
	}
}
