package cbaseline

/*
#include "recurse.h"
*/
import "C"

import "unsafe"

// NewReactorShaped returns the fd round trip's floor (one reference, not attached): a C
// GSource shaped as GLib sees aiosource's reactor source, with prepare and check in C
// that report nothing queued, kickfd (an eventfd never written; -1 for none) and fd
// watched for IN, and a dispatch that reads fd. canRecurse sets g_source_set_can_recurse:
// aiosource sets it, as QEMU does; without it GLib blocks and unblocks the source's fds
// around every dispatch, which writes and acknowledges its wakeup fd each round.
func NewReactorShaped(fd, kickfd int, canRecurse bool) unsafe.Pointer {
	return unsafe.Pointer(C.cb_rsource_new(C.int(fd), C.int(kickfd), cbool(canRecurse)))
}

// ReactorShapedCount returns how many dispatches of a NewReactorShaped source read a
// value from its fd.
func ReactorShapedCount(src unsafe.Pointer) int64 {
	return int64(C.cb_rsource_count((*C.GSource)(src)))
}
