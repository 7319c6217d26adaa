package apicheck_test

import (
	"strings"
	"testing"

	"github.com/glibaio/glibaio/internal/apicheck"
)

// fixtureAPI is the listing of testdata/fixture, line for line. The fixture's comments
// say why each line is there; what is missing is missing on purpose: unexported
// declarations, methods of unexported types, members hidden by a shallower name or
// ambiguous at one depth, and the files a linux/amd64 cgo build does not compile
// (//go:build ignore, //go:build race, _windows.go, _test.go).
const fixtureAPI = `pkg fixture, const Bool ideal-bool
pkg fixture, const Cgo = C.SOME_CONSTANT
pkg fixture, const Ch ideal-char
pkg fixture, const Conv Priority
pkg fixture, const Cx ideal-complex
pkg fixture, const Fl ideal-float
pkg fixture, const KindA Priority
pkg fixture, const KindB Priority
pkg fixture, const KindD Priority
pkg fixture, const Mixed ideal-float
pkg fixture, const Multi int
pkg fixture, const PriorityHigh Priority
pkg fixture, const PriorityLow Priority
pkg fixture, const Remote2 stdtime.Duration
pkg fixture, const Size uintptr
pkg fixture, const Str ideal-string
pkg fixture, const Typed Priority
pkg fixture, const Untyped ideal-int
pkg fixture, const Untyped2 ideal-int
pkg fixture, func Chans(<-chan int, chan<- string, chan struct{})
pkg fixture, func Composite(map[string][]*Point, [4]byte, *[2]stdtime.Duration)
pkg fixture, func FromC(*C.int, C.size_t) unsafe.Pointer
pkg fixture, func FuncParam(func(int, bool) bool) func() error
pkg fixture, func Inline(interface{}, interface{ M(int) bool }, struct{ A, B int; c string "tag" })
pkg fixture, func Map[T, U any]([]T, func(T) U) []U
pkg fixture, func Params(int, int, ...string) (int, error)
pkg fixture, func Plain()
pkg fixture, func Sum[N Number](...N) N
pkg fixture, method (*Defined) DeeperPtr()
pkg fixture, method (*List[E]) Push(E)
pkg fixture, method (*Point) DeeperPtr()
pkg fixture, method (*Point) InnerPtr() error
pkg fixture, method (*Point) Pointer(stdtime.Duration) Point
pkg fixture, method (List[T]) Len() int
pkg fixture, method (Point) InnerValue() int
pkg fixture, method (Point) SwapXY() (float64, float64)
pkg fixture, method (Point) Value() float64
pkg fixture, method (Priority) String() string
pkg fixture, method (Ptr) DeeperPtr()
pkg fixture, method (Ptr) InnerPtr() error
pkg fixture, method (Ptr) InnerValue() int
pkg fixture, method (Ptr) Label() string
pkg fixture, method (Wrapper) Dispatch(*Source) bool
pkg fixture, method (Wrapper) Extra() int
pkg fixture, method (Wrapper) Prepare() (bool, stdtime.Duration)
pkg fixture, type Alias = Point
pkg fixture, type Ambiguous struct
pkg fixture, type Blank interface {}
pkg fixture, type Closer interface { Help, Source, io.Closer, unexported methods }
pkg fixture, type Closer interface, Help(string) string
pkg fixture, type Closer interface, embedded Source
pkg fixture, type Closer interface, embedded io.Closer
pkg fixture, type Closer interface, unexported methods
pkg fixture, type Defined struct
pkg fixture, type Defined struct, Deepest []byte
pkg fixture, type Defined struct, Promoted string
pkg fixture, type Defined struct, X bool
pkg fixture, type Empty struct
pkg fixture, type Handler func(uint32) bool
pkg fixture, type Inner struct
pkg fixture, type Inner struct, Depth int
pkg fixture, type List[E any] struct
pkg fixture, type List[E any] struct, Count int
pkg fixture, type List[E any] struct, Head *node[E]
pkg fixture, type Number interface { ~int | ~int64 | ~float64 }
pkg fixture, type Number interface, embedded ~int | ~int64 | ~float64
pkg fixture, type Opaque struct
pkg fixture, type Ordered[T cmp.Ordered] interface { Less, comparable }
pkg fixture, type Ordered[T cmp.Ordered] interface, Less(T) bool
pkg fixture, type Ordered[T cmp.Ordered] interface, embedded comparable
pkg fixture, type Pair[K comparable, V any] struct
pkg fixture, type Pair[K comparable, V any] struct, Key K
pkg fixture, type Pair[K comparable, V any] struct, Val V
pkg fixture, type Point struct
pkg fixture, type Point struct, Deepest []byte
pkg fixture, type Point struct, Label string
pkg fixture, type Point struct, Promoted string
pkg fixture, type Point struct, X float64
pkg fixture, type Point struct, Y float64
pkg fixture, type Point struct, embedded *Inner
pkg fixture, type Point struct, embedded io.Reader
pkg fixture, type Priority int
pkg fixture, type Ptr struct
pkg fixture, type Ptr struct, Deepest []byte
pkg fixture, type Ptr struct, Promoted string
pkg fixture, type Ptr struct, X bool
pkg fixture, type Remote = io.Writer
pkg fixture, type Seq[T any] func(func(T) bool)
pkg fixture, type Source interface { Dispatch, Prepare }
pkg fixture, type Source interface, Dispatch(*Source) bool
pkg fixture, type Source interface, Prepare() (bool, stdtime.Duration)
pkg fixture, type Vec[T any] = []T
pkg fixture, type Wrapper struct
pkg fixture, var AliasOfNew *Inner
pkg fixture, var Callback func(int) bool
pkg fixture, var CgoTyped C.int
pkg fixture, var Converted Priority
pkg fixture, var Count int
pkg fixture, var Elsewhere = io.EOF
pkg fixture, var ErrFormat error
pkg fixture, var ErrPlain error
pkg fixture, var ErrTyped error
pkg fixture, var Fresh *Inner
pkg fixture, var FromFunc func(int, int, ...string) (int, error)
pkg fixture, var Generic = Map[int, string]
pkg fixture, var Instance List[int]
pkg fixture, var Later = 5 * stdtime.Second
pkg fixture, var Made []Point
pkg fixture, var Name string
pkg fixture, var Origin Point
pkg fixture, var OriginPtr *Point
pkg fixture, var R1 int
pkg fixture, var R2 error
pkg fixture, var Ratio float64
pkg fixture, var Result Point
pkg fixture, var Table map[string]int
`

// TestList checks the lister's output on the fixture exactly.
func TestList(t *testing.T) {
	got, err := apicheck.List("testdata/fixture", "fixture")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(fixtureAPI, "\n"), "\n")
	if d := apicheck.Diff(want, got); len(d) > 0 {
		t.Errorf("listing of testdata/fixture (+ unexpected, - missing):\n%s", strings.Join(d, "\n"))
	} else if strings.Join(got, "\n")+"\n" != fixtureAPI {
		t.Errorf("listing not sorted or has duplicates:\n%s", strings.Join(got, "\n"))
	}
}

// TestListErrors checks that List reports a directory it cannot list.
func TestListErrors(t *testing.T) {
	for _, tc := range []struct{ dir, want string }{
		{"testdata/absent", "no such file or directory"},
		{"testdata/mixed", "files of packages a and b"},
		{"testdata/nofiles", "no Go files for linux/amd64"},
	} {
		_, err := apicheck.List(tc.dir, "x")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("List(%q) error = %v, want one that says %q", tc.dir, err, tc.want)
		}
	}
}

// TestDiff checks the +/- form of a listing change.
func TestDiff(t *testing.T) {
	golden := []string{"pkg p, func A()", "pkg p, func B(int)", "pkg p, func D()"}
	have := []string{"pkg p, func A()", "pkg p, func B(int, int)", "pkg p, func C()", "pkg p, func D()"}
	want := []string{"- pkg p, func B(int)", "+ pkg p, func B(int, int)", "+ pkg p, func C()"}
	got := apicheck.Diff(golden, have)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := apicheck.Diff(have, have); len(d) != 0 {
		t.Errorf("Diff of equal listings = %q, want none", d)
	}
}
