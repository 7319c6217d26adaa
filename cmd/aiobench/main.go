// Command aiobench measures glibaio against the baselines it must beat, side by side in
// one run: a pure-C GSource, GLib's per-fd sources, gotk3's IdleAdd, a GSource with
// g_source_set_ready_time, a bare timerfd, two C threads with epoll_wait, a C
// sigsetjmp/siglongjmp coroutine switch, goroutines with channels or sync.Mutex. It
// prints one row per scenario with medians over interleaved rounds, the ratio and the
// target; a row whose target is "report" reports a ratio and claims no pass.
//
//	aiobench [-quick] [-json] [-svg chart.svg] [-only REGEXP]
//
// -only runs only the sections whose name matches REGEXP (-h lists them), for example
// -only coroutine or -only 'CoMutex|enter'.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/benchsuite"
)

func main() {
	quick := flag.Bool("quick", false, "short run (under 60 s on 2 cores)")
	asJSON := flag.Bool("json", false, "print the rows as a JSON array")
	svg := flag.String("svg", "", "write the cost-per-iteration vs registered fds chart to this SVG file")
	only := flag.String("only", "", "run only the sections whose name matches this regexp:\n"+strings.Join(benchsuite.Sections, "\n"))
	flag.Parse()

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
	rows, sc, err := benchsuite.Run(cfg, func(s string) { fmt.Fprintln(os.Stderr, "aiobench: measuring", s) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "aiobench:", err)
		os.Exit(1)
	}
	if *svg != "" && len(sc.FDs) == 0 {
		fmt.Fprintln(os.Stderr, "aiobench: -svg: the fd scaling section did not run; no chart written")
	} else if *svg != "" {
		if err := writeChart(*svg, sc); err != nil {
			fmt.Fprintln(os.Stderr, "aiobench:", err)
			os.Exit(1)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		enc.Encode(rows)
		return
	}
	printTable(rows)
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

func printTable(rows []benchsuite.Row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\tours\tbaseline\tbaseline value\tratio\ttarget\tresult")
	for _, r := range rows {
		unit := "ns"
		if strings.Contains(r.Name, "in µs") {
			unit = "µs"
		}
		if strings.Contains(r.Name, "allocs per op") {
			fmt.Fprintf(w, "%s\t%.2f\t%s\t\t\t%s\t%s\n", r.Name, r.OursNS, r.Baseline, r.Target, verdict(r))
			continue
		}
		fmt.Fprintf(w, "%s\t%.0f %s\t%s\t%.0f %s\t%.3fx\t%s\t%s\n", r.Name, r.OursNS, unit, r.Baseline, r.BaselineNS, unit, r.Ratio, r.Target, verdict(r))
	}
	w.Flush()
}

func verdict(r benchsuite.Row) string {
	switch {
	case r.Target == benchsuite.TargetReport:
		return "-"
	case r.Pass:
		return "pass"
	}
	return "FAIL"
}
