package gotk4test_test

import (
	"testing"
	"time"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/internal/leakcheck"
)

// Every test here shares the process's one default GMainContext with coreglib, so none
// runs in parallel, and each leaves nothing attached to it.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// event is one callback run: who ran and on which iteration of the default context.
type event struct {
	name string
	iter int
}

// recorder logs callbacks in the order they run. Callbacks all run on the thread that
// drives the default context, and the test reads the log only after the drive returns,
// so it needs no lock.
type recorder struct {
	probe  *iterProbe
	events []event
}

func (r *recorder) add(name string) {
	r.events = append(r.events, event{name, r.probe.n})
}

// iterProbe is a glibaio source at a priority above every other one, so GLib calls its
// Prepare first and exactly once in every iteration of the context: it counts the
// iterations of whatever drives the context (Iteration or Loop.Run). It is never ready.
type iterProbe struct {
	src *glibloop.Source
	n   int
}

func (p *iterProbe) Prepare(*glibloop.Source) (bool, time.Duration) {
	p.n++
	return false, -1
}

func (p *iterProbe) Dispatch(*glibloop.Source) bool { return true }

// setup starts a test on the default context: it checks that the context is idle, checks
// for leaked cgo handles when the test ends, and drains whatever a failed test left
// attached, so that the next test starts clean. It returns a recorder whose events carry
// the number of the iteration they ran in.
func setup(t *testing.T) *recorder {
	t.Helper()
	leakcheck.Handles(t)
	if glibloop.DefaultContext().Pending() {
		t.Fatal("the default context has work before the test")
	}
	t.Cleanup(func() { flushDefault(t) })
	return &recorder{probe: newProbe(t)}
}

// newProbe attaches an iteration probe to the default context until the test ends.
func newProbe(t *testing.T) *iterProbe {
	t.Helper()
	p := &iterProbe{}
	p.src = glibloop.NewSource(p)
	p.src.SetName("gotk4test-iteration-probe")
	p.src.SetPriority(glibloop.PriorityHigh - 1000)
	p.src.Attach(glibloop.DefaultContext())
	t.Cleanup(func() {
		p.src.Destroy()
		p.src.Unref()
	})
	return p
}

// oneshot is a glibaio source that is ready at once, runs fn on its first dispatch and
// removes itself.
type oneshot struct{ fn func() }

func (o *oneshot) Dispatch(*glibloop.Source) bool {
	o.fn()
	return false
}

// addOneshot attaches a oneshot source at prio to the default context.
func addOneshot(prio glibloop.Priority, fn func()) *glibloop.Source {
	s := glibloop.NewSource(&oneshot{fn})
	s.SetPriority(prio)
	s.SetReadyTime(0)
	s.Attach(glibloop.DefaultContext())
	return s
}

// newAio creates an AioContext whose GSource has priority prio; the caller attaches it.
// It is closed when the test ends, and a Close that reports live BHs or timers fails the
// test.
func newAio(t *testing.T, prio glibloop.Priority) *aiosource.Context {
	t.Helper()
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	c.Source().SetPriority(prio)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("aiosource Close: %v", err)
		}
	})
	return c
}

// flushDefault iterates the default context without blocking until nothing is
// dispatched, and fails the test if something still is after many rounds.
func flushDefault(t *testing.T) {
	t.Helper()
	for i := 0; glibloop.DefaultContext().Iteration(false); i++ {
		if i > 1000 {
			t.Fatal("the default context never went idle")
		}
	}
}
