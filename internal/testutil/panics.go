package testutil

import "testing"

// MustPanic runs fn and fails t unless fn panics, on the calling goroutine, with the
// string want: a plain string, as an argument check raises, not a *glibloop.PanicError
// relayed from a loop.
func MustPanic(t testing.TB, want string, fn func()) {
	t.Helper()
	var r any
	func() {
		defer func() { r = recover() }()
		fn()
	}()
	if r == nil {
		t.Fatalf("no panic, want %q", want)
	}
	got, ok := r.(string)
	if !ok {
		t.Fatalf("panicked with %T %v, want the string %q", r, r, want)
	}
	if got != want {
		t.Fatalf("panic = %q, want %q", got, want)
	}
}
