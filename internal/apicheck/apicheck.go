// Package apicheck lists the exported API of a Go package, one line per element, in the
// style of Go's api/go1.*.txt files. glibaio keeps the listing of each public package in
// the repository's api/ directory; TestAPI compares it with the source, so every change
// to the exported API shows up in review as a diff of those files. `make api` rewrites
// them (go test ./internal/apicheck -run TestAPI -update).
//
// The lister reads source only, with go/parser and go/ast: no type checking and no cgo
// processing, so it works on cgo packages and needs no C toolchain. It reads the
// package's non-test .go files that a linux/amd64 build with cgo enabled and no extra
// build tags compiles (so a file tagged //go:build ignore, race or windows is not read).
//
// # Format
//
// Each line starts with "pkg <path>, " where path is the package's import path below
// the module. Parameter and result names are dropped, also inside func types; types
// are printed as written in the source (any stays any, byte stays byte). Lines are sorted.
//
//	pkg p, func NewSource(SourceFuncs) *Source
//	pkg p, func Map[T, U any]([]T, func(T) U) []U
//	pkg p, method (*Source) Attach(*MainContext) uint
//	pkg p, method (*List[E]) Push(E)
//	pkg p, type Priority int
//	pkg p, type PanicError = cshim.PanicError
//	pkg p, type PollFD struct
//	pkg p, type PollFD struct, FD int32
//	pkg p, type ReadWriter struct, embedded *Reader
//	pkg p, type SourceFuncs interface { Dispatch }
//	pkg p, type SourceFuncs interface, Dispatch(*Source) bool
//	pkg p, type Handle interface, embedded io.Closer
//	pkg p, type Handle interface, unexported methods
//	pkg p, const PriorityHigh Priority
//	pkg p, const MaxDepth ideal-int
//	pkg p, var ErrClosed error
//	pkg p, var ErrNotOwner = cshim.ErrNotOwner
//
// As in Go's files, an interface has a summary line listing its members in braces, so
// adding a method to an interface (which breaks its implementations) changes that line
// too. An untyped constant has the type ideal-int, ideal-float, ideal-complex,
// ideal-char, ideal-string or ideal-bool. A constant or variable declared without a type
// gets the type its initializer shows: a literal, a composite literal, a conversion, a
// func literal, new, make, len, errors.New, fmt.Errorf, a function of the package or a
// call of one, another constant or variable of the package, or an operator over those.
// Constants in a group that omit type and value repeat the previous ones, as in Go.
// Where the declaration does not show the type, the line shows the initializer
// instead: "var X = expr".
//
// Exported fields and methods promoted to an exported struct through an embedded
// unexported type of the package are listed as the struct's own, under Go's rules for
// depth, hiding, ambiguity and pointer receivers. Those of an embedded exported type
// are left to that type's listing (the struct lists "embedded T"). An interface that
// embeds an unexported interface of the package lists its methods as its own.
//
// # Not covered
//
// Without type information the lister does not show: constant values; members promoted
// from an embedded type of another package or from a generic embedded type (nor name
// collisions with them); the members of an unexported type reached through an exported
// alias ("type A = t"), or of an exported type under a defined type ("type A B" is
// listed as written); types that only a call into another package (other than
// errors.New and fmt.Errorf), a method call, an index or a receive would show; build
// variants other than linux/amd64 with cgo. As in Go's files, the order of fields and
// the tags of a struct's listed fields are not shown.
package apicheck

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// List returns the API listing of the package whose source is in dir, sorted, one
// element per line (without a newline). path is the package's name in the listing: its
// import path below the module, such as "glibloop" or "glibloop/gotk3".
func List(dir, path string) ([]string, error) {
	files, err := parseDir(dir)
	if err != nil {
		return nil, err
	}
	l := newLister(path, files)
	l.run()
	lines := make([]string, 0, len(l.lines))
	for s := range l.lines {
		lines = append(lines, s)
	}
	sort.Strings(lines)
	return lines, nil
}

// buildContext is the one build configuration the listing describes, the same on every
// host: linux/amd64 with cgo and no tags beyond the Go release tags.
func buildContext() *build.Context {
	c := build.Default
	c.GOOS, c.GOARCH = "linux", "amd64"
	c.CgoEnabled = true
	c.BuildTags, c.ToolTags = nil, nil
	return &c
}

// parseDir parses the package's non-test files in dir that buildContext compiles.
func parseDir(dir string) ([]*ast.File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("apicheck: %w", err)
	}
	ctx := buildContext()
	fset := token.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := ctx.MatchFile(dir, name); err != nil {
			return nil, fmt.Errorf("apicheck: %w", err)
		} else if !ok {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("apicheck: %w", err)
		}
		if len(files) > 0 && f.Name.Name != files[0].Name.Name {
			return nil, fmt.Errorf("apicheck: %s: files of packages %s and %s", dir, files[0].Name.Name, f.Name.Name)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("apicheck: %s: no Go files for linux/amd64", dir)
	}
	return files, nil
}

// Diff compares two listings and returns the lines only in have prefixed with
// "+ " (added) and the lines only in golden prefixed with "- " (removed), in the order
// of the lines, so that the old and new form of an element sit next to each other.
func Diff(golden, have []string) []string {
	inGolden := make(map[string]bool, len(golden))
	for _, s := range golden {
		inGolden[s] = true
	}
	inHave := make(map[string]bool, len(have))
	for _, s := range have {
		inHave[s] = true
	}
	type change struct{ line, sign string }
	var changes []change
	for s := range inHave {
		if !inGolden[s] {
			changes = append(changes, change{s, "+ "})
		}
	}
	for s := range inGolden {
		if !inHave[s] {
			changes = append(changes, change{s, "- "})
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].line < changes[j].line })
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.sign + c.line
	}
	return out
}
