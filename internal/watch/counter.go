package watch

// A Counter is a statistics counter that one thread at a time adds to and any goroutine
// reads: a call count, the BHs a loop ran. The threads that add to it take turns
// through some synchronization of their own (a GLib context's owner, an AioContext's
// home thread), as QEMU's statistics are written with qatomic_set by the thread that
// owns them and read with qatomic_read by any.
//
// A locked read-modify-write costs about 6 ns here, a plain one under 1 ns, and a
// loop pays one per callback per counter. So outside race builds, on 64-bit targets,
// Add is a plain read-modify-write and Load an atomic load: Go's memory model makes a
// racing read of a word-sized location observe some write to it (never a torn value),
// and with one writer at a time every write is the count at some moment. Race builds
// and 32-bit targets use atomic additions, which the race detector can follow (and
// which align the word on 32-bit targets). The type is declared per build, in
// counter_plain.go and counter_atomic.go.
