// Command aiobench measures glibaio against the baselines it must beat, side by side in
// one run: a pure-C GSource, GLib's per-fd sources, gotk3's IdleAdd, a GSource with
// g_source_set_ready_time, a bare timerfd and two C threads with epoll_wait. It prints
// one row per scenario with medians over interleaved rounds, the ratio and the target.
//
//	aiobench [-quick] [-json] [-svg chart.svg]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/glibaio/glibaio/internal/benchsuite"
)

func main() {
	quick := flag.Bool("quick", false, "short run (under 60 s on 2 cores)")
	asJSON := flag.Bool("json", false, "print the rows as a JSON array")
	svg := flag.String("svg", "", "write the cost-per-iteration vs registered fds chart to this SVG file")
	flag.Parse()

	if err := raiseNoFile(); err != nil {
		fmt.Fprintln(os.Stderr, "aiobench:", err)
		os.Exit(1)
	}
	cfg := benchsuite.FullConfig()
	if *quick {
		cfg = benchsuite.QuickConfig()
	}
	rows, sc, err := benchsuite.Run(cfg, func(s string) { fmt.Fprintln(os.Stderr, "aiobench: measuring", s) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "aiobench:", err)
		os.Exit(1)
	}
	if *svg != "" {
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
			fmt.Fprintf(w, "%s\t%.2f\t%s\t\t\t%s\t%s\n", r.Name, r.OursNS, r.Baseline, r.Target, verdict(r.Pass))
			continue
		}
		fmt.Fprintf(w, "%s\t%.0f %s\t%s\t%.0f %s\t%.3fx\t%s\t%s\n", r.Name, r.OursNS, unit, r.Baseline, r.BaselineNS, unit, r.Ratio, r.Target, verdict(r.Pass))
	}
	w.Flush()
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "FAIL"
}
