//go:build asan

package benchsuite

// asanBuild: AddressSanitizer is on, and the C coroutine switch stays off
// (coroutine_cswitch_test.go).
const asanBuild = true
