package glibloop

/*
#cgo pkg-config: glib-2.0
#include <glib.h>
*/
import "C"

import (
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/glibaio/glibaio/cshim"
	"github.com/glibaio/glibaio/internal/watch"
)

// SourceFuncs is what a Go type implements to be a GSource: GLib calls Dispatch when
// the source is ready. Return false to remove the source (G_SOURCE_REMOVE).
//
// A source without Prepare is "not ready, no timeout" before poll; a source without
// Check is "not ready" after poll, except that a unix fd added with AddUnixFD that has
// revents still makes it ready, and so does a ready time that has passed, as in GLib.
type SourceFuncs interface {
	Dispatch(s *Source) bool
}

// SourcePreparer is implemented by sources that decide before poll whether they are
// ready. A timeout < 0 means none; a positive one is rounded up to whole milliseconds,
// as GLib's poll timeout is.
type SourcePreparer interface {
	Prepare(s *Source) (ready bool, timeout time.Duration)
}

// SourceChecker is implemented by sources that decide after poll whether they are ready.
type SourceChecker interface {
	Check(s *Source) bool
}

// SourceFinalizer is implemented by sources that release resources when GLib frees the
// source. Finalize runs exactly once, on the thread that drops the last reference.
type SourceFinalizer interface {
	Finalize(s *Source)
}

// FDTag identifies a unix fd added to a source with AddUnixFD. The zero FDTag is
// invalid; tags are comparable.
type FDTag struct{ p unsafe.Pointer }

// IsZero reports whether the tag is the invalid zero tag.
func (t FDTag) IsZero() bool { return t.p == nil }

// Source is a GSource. Sources made by NewSource run Go callbacks; all methods are safe
// from any goroutine and are no-ops once GLib has finalized the source.
type Source struct {
	// What a crossing from C reads, together in one allocation (NewSource): the state
	// cshim's trampolines reach by the source's key, and Dispatch's statistics.
	cs    cshim.Source
	point watch.Point
	slot  watch.Slot // the Dispatch running now, for the stall watchdog

	ptr   unsafe.Pointer // *C.GSource, accessed atomically; nil once finalized
	funcs SourceFuncs
	fin   SourceFinalizer
	name  atomic.Pointer[string]

	mu     sync.Mutex
	tags   map[FDTag]struct{} // unix fds added and not removed
	parent *Source            // set while this is a child source
}

// NewSource creates a GSource whose callbacks are f's methods. The caller owns the one
// reference it holds; drop it with Unref, usually right after Attach. The source gets
// GLib's defaults: PriorityDefault, no name, can_recurse false, no ready time. It panics
// if f is nil.
func NewSource(f SourceFuncs) *Source {
	if f == nil {
		panic("glibloop: NewSource: nil SourceFuncs")
	}
	s := &Source{funcs: f}
	s.point.Init("source dispatch", fmt.Sprintf("%T", f), nil)
	s.point.SetPC(methodPC(f))
	watch.Register(&s.slot)
	s.cs = cshim.Source{
		// cshim brackets each call with the slot's Enter and Leave, a panicking one
		// included: statistics and the stall watchdog.
		Dispatch: func() bool { return f.Dispatch(s) },
		Slot:     &s.slot,
		Point:    &s.point,
		Finalize: s.finalize,
		Describe: func() string { return fmt.Sprintf("source %q (%T)", s.Name(), f) },
		Owner:    s,
	}
	if p, ok := f.(SourcePreparer); ok {
		s.cs.Prepare = func() (bool, int32) {
			ready, timeout := p.Prepare(s)
			return ready, timeoutMS(timeout)
		}
	}
	if c, ok := f.(SourceChecker); ok {
		s.cs.Check = func() bool { return c.Check(s) }
	}
	s.fin, _ = f.(SourceFinalizer)
	s.ptr = cshim.NewSource(&s.cs)
	return s
}

func (s *Source) finalize() {
	atomic.StorePointer(&s.ptr, nil) // from here on every method is a no-op
	watch.Unregister(&s.slot)
	if s.fin != nil {
		s.fin.Finalize(s)
	}
}

// timeoutMS converts a prepare timeout to GLib's milliseconds, rounding up so that a
// source is never polled for too short a time.
func timeoutMS(d time.Duration) int32 {
	switch {
	case d < 0:
		return -1
	case d == 0:
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(ms)
}

func (s *Source) p() *C.GSource {
	if s == nil {
		return nil
	}
	return (*C.GSource)(atomic.LoadPointer(&s.ptr))
}

// Native returns the GSource*, or nil once finalized.
func (s *Source) Native() unsafe.Pointer { return unsafe.Pointer(s.p()) }

// Attach adds the source to a context (nil: the default context) and returns its id,
// which is > 0. It returns 0, and does nothing, when the source is destroyed, finalized
// or already attached, or the context was Unref'd.
func (s *Source) Attach(c *MainContext) uint {
	p, cp := s.p(), c.native()
	if p == nil || cp == nil || C.g_source_is_destroyed(p) != 0 || C.g_source_get_context(p) != nil {
		return 0
	}
	return uint(C.g_source_attach(p, cp))
}

// Destroy removes the source from its context (g_source_destroy): it is never
// dispatched again and can never be attached again. The context drops its reference,
// which finalizes the source here when it was the last one. Destroying twice is harmless.
func (s *Source) Destroy() {
	if p := s.p(); p != nil {
		raise(cshim.SourceDestroy(unsafe.Pointer(p)))
	}
}

// IsDestroyed reports whether the source was destroyed (or finalized).
func (s *Source) IsDestroyed() bool {
	p := s.p()
	return p == nil || C.g_source_is_destroyed(p) != 0
}

// Ref takes a reference (g_source_ref) and returns s.
func (s *Source) Ref() *Source {
	if p := s.p(); p != nil {
		C.g_source_ref(p)
	}
	return s
}

// Unref drops a reference (g_source_unref). When it is the last one, Finalize runs here.
func (s *Source) Unref() {
	if p := s.p(); p != nil {
		raise(cshim.SourceUnref(unsafe.Pointer(p)))
	}
}

// SetPriority sets the priority (g_source_set_priority), also while attached. A child
// source takes its parent's priority and ignores this.
func (s *Source) SetPriority(prio Priority) {
	p := s.p()
	if p == nil || s.isChild() {
		return
	}
	C.g_source_set_priority(p, C.gint(prio))
}

// Priority returns the priority.
func (s *Source) Priority() Priority {
	if p := s.p(); p != nil {
		return Priority(C.g_source_get_priority(p))
	}
	return 0
}

// SetName names the source (g_source_set_name); names appear in panic reports and in
// tools such as sysprof.
func (s *Source) SetName(name string) {
	p := s.p()
	if p == nil {
		return
	}
	s.name.Store(&name)
	if s.cs.Point != nil { // made by NewSource: it has Dispatch statistics
		s.point.SetName(name)
	}
	cs := C.CString(name)
	C.g_source_set_name(p, cs)
	C.free(unsafe.Pointer(cs))
}

// Name returns the name set with SetName.
func (s *Source) Name() string {
	if n := s.name.Load(); n != nil {
		return *n
	}
	return ""
}

// SetCanRecurse sets whether the source may be dispatched again from a nested loop that
// runs inside its own Dispatch (g_source_set_can_recurse). The default, false, blocks
// the source and its fds while it dispatches.
func (s *Source) SetCanRecurse(b bool) {
	if p := s.p(); p != nil {
		C.g_source_set_can_recurse(p, gbool(b))
	}
}

// CanRecurse reports the can_recurse flag.
func (s *Source) CanRecurse() bool {
	p := s.p()
	return p != nil && C.g_source_get_can_recurse(p) != 0
}

// SetReadyTime sets the monotonic time, in µs (see MonotonicTime), at which the source
// becomes ready (g_source_set_ready_time): -1 for none, 0 (or any past time) for the next
// iteration. It wakes the context, so any goroutine may use it to wake a source; setting
// the value it already has costs nothing. Dispatch does not reset it.
func (s *Source) SetReadyTime(usec int64) {
	if p := s.p(); p != nil {
		C.g_source_set_ready_time(p, C.gint64(usec))
	}
}

// ReadyTime returns the ready time (-1: none).
func (s *Source) ReadyTime() int64 {
	if p := s.p(); p != nil {
		return int64(C.g_source_get_ready_time(p))
	}
	return -1
}

// Time returns the monotonic time, in µs, cached for the current iteration
// (g_source_get_time): constant within one callback and across the sources dispatched
// together. It returns 0 when the source is not attached.
func (s *Source) Time() int64 {
	p := s.p()
	if p == nil || C.g_source_is_destroyed(p) != 0 || C.g_source_get_context(p) == nil {
		return 0
	}
	return int64(C.g_source_get_time(p))
}

// ID returns the source id on its context, or 0 when it is not attached.
func (s *Source) ID() uint {
	p := s.p()
	if p == nil || C.g_source_is_destroyed(p) != 0 || C.g_source_get_context(p) == nil {
		return 0
	}
	return uint(C.g_source_get_id(p))
}

// AddUnixFD makes the source watch fd for ev (g_source_add_unix_fd). When poll reports
// any of ev (or ERR, HUP, NVAL) the source becomes ready even without Check; read the
// result with QueryUnixFD. It returns the zero tag for a negative fd or a destroyed source.
func (s *Source) AddUnixFD(fd int, ev IOCondition) FDTag {
	p := s.p()
	if p == nil || fd < 0 || C.g_source_is_destroyed(p) != 0 {
		return FDTag{}
	}
	tag := FDTag{unsafe.Pointer(C.g_source_add_unix_fd(p, C.gint(fd), C.GIOCondition(ev)))}
	s.mu.Lock()
	if s.tags == nil {
		s.tags = make(map[FDTag]struct{})
	}
	s.tags[tag] = struct{}{}
	s.mu.Unlock()
	return tag
}

func (s *Source) hasTag(t FDTag) bool {
	s.mu.Lock()
	_, ok := s.tags[t]
	s.mu.Unlock()
	return ok
}

// ModifyUnixFD changes the conditions watched for a tag (g_source_modify_unix_fd).
// GLib writes the mask without the context lock, so call it from the thread that drives
// the context, or accept that the change races with an iteration. Unknown tags are
// ignored.
func (s *Source) ModifyUnixFD(t FDTag, ev IOCondition) {
	p := s.p()
	if p == nil || !s.hasTag(t) {
		return
	}
	C.g_source_modify_unix_fd(p, C.gpointer(t.p), C.GIOCondition(ev))
}

// RemoveUnixFD stops watching a tag's fd (g_source_remove_unix_fd). Unknown or already
// removed tags are ignored.
func (s *Source) RemoveUnixFD(t FDTag) {
	p := s.p()
	if p == nil {
		return
	}
	s.mu.Lock()
	_, ok := s.tags[t]
	delete(s.tags, t)
	s.mu.Unlock()
	if ok {
		C.g_source_remove_unix_fd(p, C.gpointer(t.p))
	}
}

// QueryUnixFD returns the conditions poll reported for a tag's fd in this iteration
// (g_source_query_unix_fd). It is meaningful only inside Check or Dispatch.
func (s *Source) QueryUnixFD(t FDTag) IOCondition {
	p := s.p()
	if p == nil || !s.hasTag(t) {
		return 0
	}
	return IOCondition(C.g_source_query_unix_fd(p, C.gpointer(t.p)))
}

func (s *Source) isChild() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parent != nil
}

// AddChildSource makes child a child of s (g_source_add_child_source): it takes s's
// priority, is attached and destroyed with s, and when it is ready s is dispatched too.
// s keeps a reference on child. Nothing happens when either is destroyed, or child is
// attached or already has a parent. It panics if child is nil.
func (s *Source) AddChildSource(child *Source) {
	if child == nil {
		panic("glibloop: AddChildSource: nil child")
	}
	p, cp := s.p(), child.p()
	if p == nil || cp == nil || s == child || C.g_source_is_destroyed(p) != 0 || C.g_source_is_destroyed(cp) != 0 {
		return
	}
	child.mu.Lock()
	defer child.mu.Unlock()
	if child.parent != nil || C.g_source_get_context(cp) != nil {
		return
	}
	child.parent = s
	C.g_source_add_child_source(p, cp)
}

// RemoveChildSource detaches child from s and destroys it
// (g_source_remove_child_source). Nothing happens when child is not s's child.
func (s *Source) RemoveChildSource(child *Source) {
	p, cp := s.p(), child.p()
	if p == nil || cp == nil {
		return
	}
	child.mu.Lock()
	ok := child.parent == s
	if ok {
		child.parent = nil
	}
	child.mu.Unlock()
	// Destroying either one has already detached the child in GLib.
	if ok && C.g_source_is_destroyed(p) == 0 && C.g_source_is_destroyed(cp) == 0 {
		raise(cshim.RemoveChildSource(unsafe.Pointer(p), unsafe.Pointer(cp)))
	}
}

// SourceFromNative returns the *Source behind a GSource* whose callbacks are Go code:
// one that NewSource made, or glibaio's own (an aiosource.Context's). It returns nil for
// any other source, or a finalized one. The caller must hold a reference on the source.
// The same GSource always gives the same *Source.
func SourceFromNative(p unsafe.Pointer) *Source {
	if p == nil {
		return nil
	}
	s, _ := cshim.AdoptSource(p, func() (any, func()) {
		s := &Source{ptr: p}
		return s, func() { atomic.StorePointer(&s.ptr, nil) }
	}).(*Source)
	return s
}

// CurrentSource returns the Go-defined source being dispatched on this thread
// (g_main_current_source), or nil.
func CurrentSource() *Source {
	return SourceFromNative(unsafe.Pointer(C.g_main_current_source()))
}

func gbool(b bool) C.gboolean {
	if b {
		return 1
	}
	return 0
}

// DispatchStats returns the statistics of the source's Dispatch calls (sources made by
// NewSource only): how many (exact), their total time (estimated from sampled calls)
// and the longest timed one; see CallbackStats.
func (s *Source) DispatchStats() CallbackStats {
	if s.cs.Point == nil {
		return CallbackStats{}
	}
	return CallbackStats(s.point.Stats())
}

// methodPC finds the code of f's Dispatch method, so the stall watchdog can find the
// goroutine inside it.
func methodPC(f SourceFuncs) uintptr {
	if m, ok := reflect.TypeOf(f).MethodByName("Dispatch"); ok {
		return m.Func.Pointer()
	}
	return 0
}
