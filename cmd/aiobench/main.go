// Command aiobench measures glibaio side by side with two baselines per row, built by
// the same run: its floor, the least the platform costs for the same work done the same
// way (pure C with the flags and fds glibaio's own source uses, or the bare Go runtime
// mechanism underneath), and its peer, what a user would otherwise write (gotk3, GLib's
// own API, pure C). It prints one row per scenario with medians over interleaved rounds,
// the ratios to the floor and to the peer, and the target, a ratio to the floor or the
// peer; a row whose target is "report" claims no pass.
//
//	aiobench [-quick] [-count N] [-json] [-md] [-svg chart.svg] [-only REGEXP]
//	aiobench -load results.json [-md]
//
// -count N repeats the whole run N times and reports, per row, the median and the range
// (min-max) over the runs, deciding pass or fail on the medians; -json carries each
// run's figures too. -only runs only the sections whose name matches REGEXP (-h lists
// them), for example -only coroutine or -only 'CoMutex|enter'. -md prints the table as
// Markdown, as the README shows it. -load prints the tables of a run saved with -json,
// without measuring anything.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/benchsuite"
)

func main() {
	quick := flag.Bool("quick", false, "short run (under 60 s on 2 cores)")
	count := flag.Int("count", 1, "repeat the whole run `N` times: medians and ranges over the runs, pass or fail on the medians")
	asJSON := flag.Bool("json", false, "print the rows as a JSON array")
	md := flag.Bool("md", false, "print the table as Markdown")
	svg := flag.String("svg", "", "write the cost-per-iteration vs registered fds chart to this SVG file")
	only := flag.String("only", "", "run only the sections whose name matches this regexp:\n"+strings.Join(benchsuite.Sections, "\n"))
	load := flag.String("load", "", "print the tables of the results `file` saved with -json, measuring nothing")
	flag.Parse()
	if *load != "" {
		res, err := loadResults(*load)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aiobench: -load:", err)
			os.Exit(1)
		}
		if *md {
			printMarkdown(os.Stdout, res)
		} else {
			printTable(os.Stdout, res)
		}
		return
	}
	if *count < 1 {
		fmt.Fprintln(os.Stderr, "aiobench: -count must be at least 1")
		os.Exit(2)
	}

	if err := raiseNoFile(); err != nil {
		fmt.Fprintln(os.Stderr, "aiobench:", err)
		os.Exit(1)
	}
	cfg := benchsuite.FullConfig()
	if *quick {
		cfg = benchsuite.QuickConfig()
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintln(os.Stderr, "aiobench: -only:", err)
			os.Exit(2)
		}
		if !slices.ContainsFunc(benchsuite.Sections, re.MatchString) {
			fmt.Fprintf(os.Stderr, "aiobench: -only %q matches no section (aiobench -h lists them)\n", *only)
			os.Exit(2)
		}
		cfg.Only = re
	}
	var runs [][]benchsuite.Row
	var scs []*benchsuite.Scaling
	for i := 1; i <= *count; i++ {
		prefix := "aiobench: measuring"
		if *count > 1 {
			prefix = fmt.Sprintf("aiobench: run %d of %d: measuring", i, *count)
		}
		rows, sc, err := benchsuite.Run(cfg, func(s string) { fmt.Fprintln(os.Stderr, prefix, s) })
		if err != nil {
			fmt.Fprintln(os.Stderr, "aiobench:", err)
			os.Exit(1)
		}
		runs, scs = append(runs, rows), append(scs, sc)
	}
	res := benchsuite.Aggregate(runs)
	sc := medianScaling(scs)
	if *svg != "" && len(sc.FDs) == 0 {
		fmt.Fprintln(os.Stderr, "aiobench: -svg: the fd scaling section did not run; no chart written")
	} else if *svg != "" {
		if err := writeChart(*svg, sc); err != nil {
			fmt.Fprintln(os.Stderr, "aiobench:", err)
			os.Exit(1)
		}
	}
	switch {
	case *asJSON:
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		enc.Encode(res)
	case *md:
		printMarkdown(os.Stdout, res)
	default:
		printTable(os.Stdout, res)
	}
}

// loadResults reads the results that -json printed.
func loadResults(path string) ([]benchsuite.Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res []benchsuite.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

// medianScaling is the fd scaling data of several runs: the median of each point.
func medianScaling(scs []*benchsuite.Scaling) *benchsuite.Scaling {
	out := &benchsuite.Scaling{FDs: scs[0].FDs}
	for i := range out.FDs {
		var ours, gl []float64
		for _, sc := range scs {
			ours, gl = append(ours, sc.Ours[i]), append(gl, sc.GLib[i])
		}
		out.Ours, out.GLib = append(out.Ours, benchsuite.Median(ours)), append(out.GLib, benchsuite.Median(gl))
	}
	return out
}

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit: the scaling rows need
// 10,000 eventfds and more.
func raiseNoFile() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < 10100 {
		return fmt.Errorf("RLIMIT_NOFILE hard limit %d is below the 10,100 fds the scaling rows need", lim.Max)
	}
	return nil
}
