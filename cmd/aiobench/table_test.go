package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/glibaio/glibaio/internal/benchsuite"
)

// The tables show each row's median, its range over the runs, its floor and peer with
// their ratios, the target and the verdict on the median with the runs that passed.
func TestTables(t *testing.T) {
	run := func(ours, fr float64) []benchsuite.Row {
		return []benchsuite.Row{
			{Name: "fd", Unit: "ns", OursNS: ours, Floor: "C floor", FloorNS: 1000, FloorRatio: fr, FloorMax: 1.15,
				Baseline: "C peer", BaselineNS: 2000, Ratio: ours / 2000, Target: "<= 1.15x floor", Pass: fr <= 1.15,
				Notes: []benchsuite.Note{{Name: "naive", Value: 1100, Unit: "ns"}}},
			{Name: "allocs", Unit: "allocs/op", Floor: "-", Baseline: "-", Target: "0 allocs/op", Pass: true,
				Conds: []benchsuite.Cond{{Name: "allocs/op", Max: 0}}},
		}
	}
	res := benchsuite.Aggregate([][]benchsuite.Row{run(1100, 1.1), run(1300, 1.3), run(1120, 1.12)})
	var md, txt bytes.Buffer
	printMarkdown(&md, res)
	printTable(&txt, res)
	for _, want := range []string{
		"| fd (naive 1100 ns) | 1120 ns | 1100–1300 | C floor: 1000 ns | 1.120x (1.100x–1.300x) | C peer: 2000 ns | 0.560x (0.550x–0.650x) | <= 1.15x floor | pass (2 of 3 runs) |",
		"| allocs | 0.00 allocs/op | 0.00–0.00 | – | – | – | – | 0 allocs/op | pass (3 of 3 runs) |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks\n%s\nin\n%s", want, md.String())
		}
	}
	for _, want := range []string{"1100–1300", "1.100x–1.300x", "pass (2 of 3 runs)", "1. floor: C floor; peer: C peer"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, txt.String())
		}
	}
}

// -load reads back what -json printed.
func TestLoadResults(t *testing.T) {
	res := benchsuite.Aggregate([][]benchsuite.Row{
		{{Name: "a", Unit: "µs", OursNS: 30, Floor: "f", FloorNS: 25, FloorRatio: 1.2, FloorMax: 1.15,
			Baseline: "p", BaselineNS: 500, Ratio: 0.06, Notes: []benchsuite.Note{{Name: "n", Value: 2, Unit: "µs"}}}},
		{{Name: "a", Unit: "µs", OursNS: 28, Floor: "f", FloorNS: 26, FloorRatio: 1.1, FloorMax: 1.15,
			Baseline: "p", BaselineNS: 520, Ratio: 0.05, Notes: []benchsuite.Note{{Name: "n", Value: 3, Unit: "µs"}}}},
	})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadResults(path)
	if err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("loaded %+v, %v\nwant %+v", got, err, res)
	}
}
