package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/glibaio/glibaio/internal/benchsuite"
)

// writeChart draws cost per iteration against registered fds, log-log, for glibaio and
// for GLib's per-fd sources.
func writeChart(path string, sc *benchsuite.Scaling) error {
	p := plot.New()
	p.Title.Text = "Cost per GLib iteration, one fd ready"
	p.X.Label.Text = "registered idle fds (0 plotted at 1)"
	p.Y.Label.Text = "µs per iteration"
	p.X.Scale = plot.LogScale{}
	p.Y.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = 8 * vg.Millimeter
	p.Legend.YOffs = -6 * vg.Millimeter
	pts := func(v []float64) plotter.XYs {
		xy := make(plotter.XYs, len(v))
		for i := range v {
			xy[i].X = float64(max(sc.FDs[i], 1))
			xy[i].Y = v[i] / 1e3
		}
		return xy
	}
	if err := plotutil.AddLinePoints(p, "glibaio AioContext (fds polled by GLib, epoll from 64)", pts(sc.Ours),
		"GLib g_unix_fd_add sources", pts(sc.GLib)); err != nil {
		return err
	}
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
