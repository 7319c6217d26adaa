package benchsuite

import (
	"fmt"
	"math"
	"strings"
)

// TargetReport is the Target of a row that reports its measurements without a target to
// meet: its Pass is always false, which claims nothing.
const TargetReport = "report"

// Row is one line of the report: glibaio's figure beside its floor and its peer, each
// measured in the same run, in interleaved rounds, as medians.
//
// The floor is the least the platform costs for the same work done the same way: pure C
// (or the bare Go runtime mechanism underneath) with the flags and fds glibaio's own
// source uses, so that no row is flattered by a baseline doing extra work. The peer is
// what a user would otherwise write: gotk3, GLib's own API or pure C.
//
// A row is one literal: its name, its figures (OursNS, FloorNS and FloorRatio, BaselineNS
// and Ratio), the floor's and the peer's names, and its targets as limits: FloorMax on
// FloorRatio, PeerMax on Ratio, Conds. Run sets Unit's default, Target and Pass from
// them (decide), so a run of several (Aggregate) can decide again on the medians.
type Row struct {
	Name string `json:"name"`
	// Unit of OursNS, FloorNS and BaselineNS: "ns" (the default), "µs" or "allocs/op".
	Unit   string  `json:"unit"`
	OursNS float64 `json:"ours_ns"`

	// The peer: its name, its figure and the median over rounds of ours/peer.
	Baseline   string  `json:"baseline"`
	BaselineNS float64 `json:"baseline_ns"`
	Ratio      float64 `json:"ratio"`

	// The floor: its name, its figure and the median over rounds of ours/floor.
	Floor      string  `json:"floor"`
	FloorNS    float64 `json:"floor_ns"`
	FloorRatio float64 `json:"floor_ratio"`

	// The targets: FloorRatio <= FloorMax and Ratio <= PeerMax where they are not 0,
	// and every Cond. A row with none of them reports.
	FloorMax float64 `json:"floor_max,omitempty"`
	PeerMax  float64 `json:"peer_max,omitempty"`
	Conds    []Cond  `json:"conds,omitempty"`
	// Notes are further figures of the same rounds, shown beside the name.
	Notes []Note `json:"notes,omitempty"`

	Target string `json:"target"` // set by decide, from the limits
	Pass   bool   `json:"pass"`   // set by decide
}

// Cond is a further condition of a row's pass: Value <= Max.
type Cond struct {
	Name  string  `json:"name"` // what Value counts, e.g. "eventfd writes", "allocs/op"
	Value float64 `json:"value"`
	Max   float64 `json:"max"`
}

// Note is a further figure of a row, measured in the same rounds, that decides nothing.
type Note struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // "ns", "µs", "x" (a ratio), ...
}

// ratioText writes a ratio limit: "<= 1.15x", or for a limit below 1, ">= 20x faster
// (<= 0.05x)".
func ratioText(max float64) string {
	if max < 1 {
		return fmt.Sprintf(">= %.3gx faster (<= %gx)", 1/max, max)
	}
	return fmt.Sprintf("<= %gx", max)
}

// decide sets Unit's default, Target and Pass from the row's figures and limits.
func (r *Row) decide() {
	if r.Unit == "" {
		r.Unit = "ns"
	}
	var parts []string
	pass := true
	ok := func(v, max float64) bool { return !math.IsNaN(v) && v <= max }
	if r.FloorMax > 0 {
		parts = append(parts, ratioText(r.FloorMax)+" floor")
		pass = pass && r.FloorNS > 0 && ok(r.FloorRatio, r.FloorMax)
	}
	if r.PeerMax > 0 {
		parts = append(parts, ratioText(r.PeerMax)+" peer")
		pass = pass && r.BaselineNS > 0 && ok(r.Ratio, r.PeerMax)
	}
	for _, c := range r.Conds {
		if c.Max == 0 {
			parts = append(parts, "0 "+c.Name)
		} else {
			parts = append(parts, fmt.Sprintf("%s <= %g", c.Name, c.Max))
		}
		pass = pass && ok(c.Value, c.Max)
	}
	if len(parts) == 0 {
		r.Target, r.Pass = TargetReport, false
		return
	}
	r.Target, r.Pass = strings.Join(parts, "; "), pass
}

// Result is one row over several runs of the suite (aiobench -count N): the row's figures
// are the medians over the runs, and its Target and Pass are decided on them.
type Result struct {
	Row
	Runs       int `json:"runs"`
	PassedRuns int `json:"passed_runs"` // runs in which the row passed on its own figures
	// The ranges, [min, max] over the runs.
	OursRange       [2]float64   `json:"ours_ns_range"`
	FloorRatioRange [2]float64   `json:"floor_ratio_range"`
	RatioRange      [2]float64   `json:"ratio_range"`
	PerRun          []RunFigures `json:"per_run"`
}

// RunFigures are one run's figures of a row.
type RunFigures struct {
	OursNS     float64   `json:"ours_ns"`
	FloorNS    float64   `json:"floor_ns"`
	FloorRatio float64   `json:"floor_ratio"`
	BaselineNS float64   `json:"baseline_ns"`
	Ratio      float64   `json:"ratio"`
	Conds      []float64 `json:"conds,omitempty"` // the Conds' values, in order
	Pass       bool      `json:"pass"`
}

// Aggregate folds the rows of several runs of the suite into one Result per row name,
// in the order of the first run that has it: medians, ranges and each run's figures.
func Aggregate(runs [][]Row) []Result {
	var names []string
	byName := map[string][]Row{}
	for _, rows := range runs {
		for _, r := range rows {
			if _, ok := byName[r.Name]; !ok {
				names = append(names, r.Name)
			}
			byName[r.Name] = append(byName[r.Name], r)
		}
	}
	out := make([]Result, 0, len(names))
	for _, name := range names {
		rs := byName[name]
		col := func(f func(Row) float64) []float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return v
		}
		span := func(v []float64) [2]float64 {
			lo, hi := v[0], v[0]
			for _, x := range v {
				lo, hi = min(lo, x), max(hi, x)
			}
			return [2]float64{lo, hi}
		}
		res := Result{Row: rs[0], Runs: len(rs)}
		res.Conds = append([]Cond(nil), rs[0].Conds...)
		res.Notes = append([]Note(nil), rs[0].Notes...)
		ours := col(func(r Row) float64 { return r.OursNS })
		fr := col(func(r Row) float64 { return r.FloorRatio })
		pr := col(func(r Row) float64 { return r.Ratio })
		res.OursNS, res.OursRange = Median(ours), span(ours)
		res.FloorNS = Median(col(func(r Row) float64 { return r.FloorNS }))
		res.FloorRatio, res.FloorRatioRange = Median(fr), span(fr)
		res.BaselineNS = Median(col(func(r Row) float64 { return r.BaselineNS }))
		res.Ratio, res.RatioRange = Median(pr), span(pr)
		for i := range res.Conds {
			res.Conds[i].Value = Median(col(func(r Row) float64 { return condValue(r, res.Conds[i].Name) }))
		}
		for i := range res.Notes {
			res.Notes[i].Value = Median(col(func(r Row) float64 { return noteValue(r, res.Notes[i].Name) }))
		}
		for _, r := range rs {
			f := RunFigures{OursNS: r.OursNS, FloorNS: r.FloorNS, FloorRatio: r.FloorRatio,
				BaselineNS: r.BaselineNS, Ratio: r.Ratio, Pass: r.Pass}
			for _, c := range r.Conds {
				f.Conds = append(f.Conds, c.Value)
			}
			res.PerRun = append(res.PerRun, f)
			if r.Pass {
				res.PassedRuns++
			}
		}
		res.decide()
		out = append(out, res)
	}
	return out
}

func condValue(r Row, name string) float64 {
	for _, c := range r.Conds {
		if c.Name == name {
			return c.Value
		}
	}
	return math.NaN()
}

func noteValue(r Row, name string) float64 {
	for _, n := range r.Notes {
		if n.Name == name {
			return n.Value
		}
	}
	return math.NaN()
}
