package gotk3_test

import (
	"fmt"

	"github.com/gotk3/gotk3/glib"

	"github.com/glibaio/glibaio/glibloop"
	"github.com/glibaio/glibaio/glibloop/gotk3"
)

// A glibaio callback and a gotk3 one share GTK's default context: gotk3's own
// iteration (as gtk.Main's) dispatches both, in GLib's priority order.
func ExampleWrap() {
	ctx := gotk3.Wrap(glib.MainContextDefault()) // glibloop.DefaultContext(): no reference to drop
	glibloop.IdleAddPriority(ctx, glibloop.PriorityHigh, func() bool {
		fmt.Println("glibaio idle, high priority")
		return false
	})
	glib.IdleAdd(func() bool {
		fmt.Println("gotk3 idle, default idle priority")
		return false
	})
	g := gotk3.Unwrap(ctx)
	for g.Pending() {
		g.Iteration(false)
	}
	// Output:
	// glibaio idle, high priority
	// gotk3 idle, default idle priority
}
