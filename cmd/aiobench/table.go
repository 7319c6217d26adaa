package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/glibaio/glibaio/internal/benchsuite"
)

// value writes a row's figure in its unit.
func value(v float64, unit string) string {
	switch unit {
	case "µs":
		return fmt.Sprintf("%.1f µs", v)
	case "allocs/op":
		return fmt.Sprintf("%.2f allocs/op", v)
	case "x":
		return ratio(v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

// ratio writes a ratio with three decimals, or three significant digits below 0.1.
func ratio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.3gx", r)
	}
	return fmt.Sprintf("%.3fx", r)
}

// span writes a range "min–max" when the runs were several, with f.
func span(res benchsuite.Result, r [2]float64, f func(float64) string) string {
	if res.Runs < 2 {
		return ""
	}
	return f(r[0]) + "–" + f(r[1])
}

func plain(v float64, unit string) string {
	return strings.TrimSuffix(strings.TrimSuffix(value(v, unit), " "+unit), "x")
}

func verdict(r benchsuite.Result) string {
	v := "FAIL"
	switch {
	case r.Target == benchsuite.TargetReport:
		return "–"
	case r.Pass:
		v = "pass"
	}
	if r.Runs > 1 {
		v += fmt.Sprintf(" (%d of %d runs)", r.PassedRuns, r.Runs)
	}
	return v
}

// counted reports whether the row's figures are counts with no floor or peer.
func counted(r benchsuite.Result) bool { return r.Floor == "-" && r.Baseline == "-" }

// notes writes the row's notes: "name value; ...".
func notes(r benchsuite.Result) string {
	var p []string
	for _, n := range r.Notes {
		p = append(p, n.Name+" "+value(n.Value, n.Unit))
	}
	if len(p) == 0 {
		return ""
	}
	return " (" + strings.Join(p, "; ") + ")"
}

// printTable prints the rows as a text table, the floors and peers named below it.
func printTable(w io.Writer, rs []benchsuite.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tscenario\tglibaio\trange\tfloor\tx floor\trange\tpeer\tx peer\trange\ttarget\tresult")
	for i, r := range rs {
		pv := func(v float64) string { return plain(v, r.Unit) }
		if counted(r) {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t-\t-\t\t-\t-\t\t%s\t%s\n", i+1, r.Name+notes(r), value(r.OursNS, r.Unit),
				span(r, r.OursRange, pv), r.Target, verdict(r))
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, r.Name+notes(r),
			value(r.OursNS, r.Unit), span(r, r.OursRange, pv),
			value(r.FloorNS, r.Unit), ratio(r.FloorRatio), span(r, r.FloorRatioRange, ratio),
			value(r.BaselineNS, r.Unit), ratio(r.Ratio), span(r, r.RatioRange, ratio), r.Target, verdict(r))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for i, r := range rs {
		if !counted(r) {
			fmt.Fprintf(w, "%d. floor: %s; peer: %s\n", i+1, r.Floor, r.Baseline)
		}
	}
}

// printMarkdown prints the rows as the README's table.
func printMarkdown(w io.Writer, rs []benchsuite.Result) {
	fmt.Fprintln(w, "| scenario | glibaio | range | floor | ratio to floor (range) | peer | ratio to peer (range) | target | result |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		pv := func(v float64) string { return plain(v, r.Unit) }
		if counted(r) {
			fmt.Fprintf(w, "| %s | %s | %s | – | – | – | – | %s | %s |\n", r.Name+notes(r), value(r.OursNS, r.Unit),
				span(r, r.OursRange, pv), r.Target, verdict(r))
			continue
		}
		withSpan := func(v float64, rg [2]float64) string {
			if s := span(r, rg, ratio); s != "" {
				return ratio(v) + " (" + s + ")"
			}
			return ratio(v)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s: %s | %s | %s: %s | %s | %s | %s |\n", r.Name+notes(r),
			value(r.OursNS, r.Unit), span(r, r.OursRange, pv),
			r.Floor, value(r.FloorNS, r.Unit), withSpan(r.FloorRatio, r.FloorRatioRange),
			r.Baseline, value(r.BaselineNS, r.Unit), withSpan(r.Ratio, r.RatioRange),
			r.Target, verdict(r))
	}
}
