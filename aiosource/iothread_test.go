package aiosource_test

import (
	"errors"
	"testing"
	"time"

	"github.com/glibaio/glibaio/internal/leakcheck"

	"github.com/glibaio/glibaio/aiosource"
)

// Stop from the IOThread's own callback is refused instead of deadlocking; a context
// closed directly ends the thread, and Stop then returns at once.
func TestIOThreadStopEdges(t *testing.T) {
	leakcheck.Handles(t)
	th, err := aiosource.NewIOThread("edge")
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	th.Context().ScheduleOneshot(func() { res <- th.Stop() })
	select {
	case err := <-res:
		if !errors.Is(err, aiosource.ErrStopFromOwnThread) {
			t.Fatalf("Stop from its own thread = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop from the thread's own callback deadlocked")
	}
	if err := th.Stop(); err != nil {
		t.Fatal(err)
	}

	th2, _ := aiosource.NewIOThread("closed-directly")
	th2.Context().ScheduleOneshot(func() { th2.Context().Close() }) // from its own thread
	stopped := make(chan error, 1)
	go func() { stopped <- th2.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung after the context was closed directly")
	}
}
