package apicheck_test

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glibaio/glibaio/internal/apicheck"
)

// publicPackages are the module's public packages, as import paths below the module
// root. Each has its golden listing in api/, named after the path with "/" as "_"
// (glibloop/gotk3: api/glibloop_gotk3.txt). To make a package public, add its path here
// and run `make api`.
var publicPackages = []string{
	"aiosource",
	"coroutine",
	"glibloop",
	"glibloop/gotk3",
}

var update = flag.Bool("update", false, "rewrite the golden listings in api/ instead of comparing with them (make api)")

// TestAPI checks the exported API of every public package against its golden listing in
// api/. With -update it rewrites the listings instead, and removes those of packages no
// longer in publicPackages.
func TestAPI(t *testing.T) {
	root := moduleRoot(t)
	apiDir := filepath.Join(root, "api")
	golden := map[string]bool{}
	for _, pkg := range publicPackages {
		name := strings.ReplaceAll(pkg, "/", "_") + ".txt"
		golden[name] = true
		t.Run(pkg, func(t *testing.T) { checkPackage(t, root, pkg, filepath.Join(apiDir, name)) })
	}

	entries, err := os.ReadDir(apiDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".txt") || golden[e.Name()] {
			continue
		}
		if *update {
			if err := os.Remove(filepath.Join(apiDir, e.Name())); err != nil {
				t.Fatal(err)
			}
			t.Logf("removed api/%s", e.Name())
			continue
		}
		t.Errorf("api/%s is the listing of no package in publicPackages (internal/apicheck/api_test.go); "+
			"run `make api` to remove it, or add its package", e.Name())
	}
}

// checkPackage compares the listing of the package at import path pkg (below the
// module) with the golden file, or writes the file.
func checkPackage(t *testing.T, root, pkg, goldenPath string) {
	rel, err := filepath.Rel(root, goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	rel = filepath.ToSlash(rel)
	dir := filepath.Join(root, filepath.FromSlash(pkg))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("public package %s is missing: there is no directory %s; "+
			"add the package, or remove it from publicPackages in internal/apicheck/api_test.go", pkg, dir)
	}
	have, err := apicheck.List(dir, pkg)
	if err != nil {
		t.Fatal(err)
	}

	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		text := strings.Join(have, "\n") + "\n"
		if len(have) == 0 {
			text = ""
		}
		if err := os.WriteFile(goldenPath, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s: %d lines", rel, len(have))
		return
	}

	data, err := os.ReadFile(goldenPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s does not exist; run `make api` to write the listing of %s", rel, pkg)
	} else if err != nil {
		t.Fatal(err)
	}
	var golden []string
	for _, s := range strings.Split(string(data), "\n") {
		if s = strings.TrimSpace(s); s != "" {
			golden = append(golden, s)
		}
	}
	if d := apicheck.Diff(golden, have); len(d) > 0 {
		t.Errorf("the exported API of %s differs from %s (+ added, - removed):\n\n%s\n\n"+
			"run `make api` if the change is intended, and commit %s with it",
			pkg, rel, strings.Join(d, "\n"), rel)
	}
}

// moduleRoot returns the directory of the go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
