package aiosource_test

import (
	"runtime"
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
	"github.com/glibaio/glibaio/glibloop"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// mode is one way of driving a context: through its own Poll, or through GLib
// iterations of the GMainContext that NewMainLoop attached it to.
type mode struct {
	name string
	glib bool
	ctx  *aiosource.Context
	ml   *aiosource.MainLoop
	// iterate runs Poll(blocking) or one g_main_context_iteration(blocking).
	iterate func(blocking bool) bool
}

// modes returns a fresh context per mode; each is closed when the test ends, and a
// Close that reports leaks fails the test.
func modes(t *testing.T) []*mode {
	t.Helper()
	var out []*mode
	for _, glib := range []bool{false, true} {
		mc := glibloop.NewMainContext()
		ml, err := aiosource.NewMainLoop(mc)
		if err != nil {
			t.Fatal(err)
		}
		m := &mode{name: "Poll", ctx: ml.AioContext(), ml: ml, glib: glib}
		if glib {
			m.name = "GLib"
			m.iterate = mc.Iteration
		} else {
			m.iterate = m.ctx.Poll
		}
		t.Cleanup(func() {
			if err := ml.Close(); err != nil {
				t.Errorf("%s: Close: %v", m.name, err)
			}
			mc.Unref()
		})
		out = append(out, m)
	}
	return out
}

// eachMode runs fn as a subtest per mode, locked to its OS thread as every driver of
// a context must be while coroutines of that context are suspended across its walks:
// a coroutine runs only on the thread of its first entry, and an unlocked goroutine may
// Poll on one thread and then on another.
func eachMode(t *testing.T, fn func(t *testing.T, m *mode)) {
	t.Helper()
	for _, m := range modes(t) {
		t.Run(m.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			fn(t, m)
		})
	}
}

// flush iterates without blocking until nothing more happens.
func (m *mode) flush() {
	for i := 0; m.iterate(false); i++ {
		if i > 100000 {
			panic("the context never went idle")
		}
	}
}

func newCtx(t *testing.T) *aiosource.Context {
	t.Helper()
	c, err := aiosource.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newAttached returns a new context attached to a new GMainContext; when t ends the
// context is closed, then the GMainContext unref'd.
func newAttached(t *testing.T) (*aiosource.Context, *glibloop.MainContext) {
	t.Helper()
	mc := glibloop.NewMainContext()
	t.Cleanup(mc.Unref)
	c := newCtx(t)
	c.Attach(mc)
	return c, mc
}

// newMainLoop returns a MainLoop on a new GMainContext; when t ends it is closed (a
// Close that reports leaks fails t) and the context unref'd.
func newMainLoop(t *testing.T) (*aiosource.MainLoop, *glibloop.MainContext) {
	t.Helper()
	mc := glibloop.NewMainContext()
	ml, err := aiosource.NewMainLoop(mc)
	if err != nil {
		mc.Unref()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ml.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		mc.Unref()
	})
	return ml, mc
}
