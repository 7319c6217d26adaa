// Command gtkdemo is a real gotk3 window whose work runs on glibaio's AIO main loop,
// attached to GTK's own GMainContext and driven by gtk.Main: live counters of fd events
// from a child process's pipe, a progress bar driven by thread-pool jobs, a button that
// floods 1,000,000 BHs while the window stays responsive, and the lateness of a 16 ms
// AIO timer, and a SHA-256 of a file computed by a coroutine (package coroutine) that
// reads top to bottom and updates the window between chunks.
//
//	gtkdemo [-flood] [-screenshot out.png] [-quit-after 5s]
//
// With -screenshot it checks itself, for make check under xvfb-run: it waits until the
// window has drawn and (with -flood) the flood has finished, saves the window as PNG,
// and exits with status 1 if the window never drew, the flood did not finish within
// -timeout, or the picture is blank.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"time"

	"github.com/glibaio/glibaio/cmd/gtkdemo/internal/model"

	"github.com/glibaio/glibaio/glibloop/gotk3"

	"github.com/gotk3/gotk3/gdk"
	"github.com/gotk3/gotk3/glib"
	"github.com/gotk3/gotk3/gtk"
)

func init() { runtime.LockOSThread() } // GTK runs on the main thread

type gtkView struct {
	fd, flood, late, sum *gtk.Label
	progress             *gtk.ProgressBar
}

func (v *gtkView) SetFDEvents(events, bytes int64) {
	v.fd.SetText(fmt.Sprintf("child pipe: %d fd events, %d bytes", events, bytes))
}
func (v *gtkView) SetProgress(done, total int) {
	if total > 0 {
		v.progress.SetFraction(float64(done) / float64(total))
	}
	v.progress.SetText(fmt.Sprintf("thread pool: %d / %d jobs", done, total))
}
func (v *gtkView) SetFlood(text string)    { v.flood.SetText(text) }
func (v *gtkView) SetLateness(text string) { v.late.SetText(text) }
func (v *gtkView) SetChecksum(text string) { v.sum.SetText(text) }

func main() {
	shot := flag.String("screenshot", "", "save a PNG of the window to this file, then quit")
	quitAfter := flag.Duration("quit-after", 0, "quit after this long (0: when the window closes)")
	floodAtStart := flag.Bool("flood", false, "press the flood button once, a second after start")
	timeout := flag.Duration("timeout", 60*time.Second, "with -screenshot: fail if the window has not drawn, or the flood not finished, by then")
	flag.Parse()

	gtk.Init(nil)
	win, err := gtk.WindowNew(gtk.WINDOW_TOPLEVEL)
	if err != nil {
		log.Fatal(err)
	}
	win.SetTitle("glibaio on gtk.Main")
	win.SetDefaultSize(520, 300)
	box, _ := gtk.BoxNew(gtk.ORIENTATION_VERTICAL, 8)
	box.SetMarginStart(12)
	box.SetMarginEnd(12)
	box.SetMarginTop(12)
	box.SetMarginBottom(12)
	v := &gtkView{}
	v.fd, _ = gtk.LabelNew("child pipe: waiting")
	v.progress, _ = gtk.ProgressBarNew()
	v.progress.SetShowText(true)
	v.flood, _ = gtk.LabelNew("press the button to flood the loop")
	v.late, _ = gtk.LabelNew("16 ms AIO timer lateness: measuring")
	btn, _ := gtk.ButtonNewWithLabel("Flood 1,000,000 BHs")
	jobs, _ := gtk.ButtonNewWithLabel("Submit 50 thread-pool jobs")
	v.sum, _ = gtk.LabelNew("sha256: press the button")
	v.sum.SetLineWrap(true)
	v.sum.SetSelectable(true)
	sumBtn, _ := gtk.ButtonNewWithLabel("SHA-256 of this program (a coroutine)")
	cancelBtn, _ := gtk.ButtonNewWithLabel("Cancel the SHA-256")
	for _, w := range []gtk.IWidget{v.fd, v.progress, jobs, btn, v.flood, v.late, sumBtn, cancelBtn, v.sum} {
		box.PackStart(w, false, false, 0)
	}
	win.Add(box)

	// The AIO main loop lives on GTK's own context: gtk.Main drives it.
	m, err := model.New(gotk3.Wrap(glib.MainContextDefault()), v)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.StartChild(); err != nil {
		log.Fatal(err)
	}
	m.StartJobs(50, 40*time.Millisecond)
	btn.Connect("clicked", func() { m.Flood(1_000_000) })
	jobs.Connect("clicked", func() { m.StartJobs(50, 40*time.Millisecond) })
	self, _ := os.Executable()
	sumBtn.Connect("clicked", func() { m.Checksum(self) })
	cancelBtn.Connect("clicked", m.CancelChecksum)
	m.Checksum(self) // runs once gtk.Main drives the loop
	// Quitting ends gtk.Main only once the checksum Task has returned: it can resume
	// only while gtk.Main dispatches.
	quit := func() { m.Stop(gtk.MainQuit) }
	win.Connect("destroy", quit)
	drawn := 0
	win.Connect("draw", func() bool { drawn++; return false })
	win.ShowAll()
	if *floodAtStart {
		glib.TimeoutAdd(1000, func() bool { m.Flood(1_000_000); return false })
	}

	failed := false
	if *shot != "" {
		start := time.Now()
		glib.TimeoutAdd(100, func() bool {
			n, took := m.LastFlood()
			ready := drawn > 0 && (!*floodAtStart || n > 0) && time.Since(start) >= 1500*time.Millisecond
			if !ready && time.Since(start) < *timeout {
				return true
			}
			switch {
			case drawn == 0:
				log.Printf("gtkdemo: the window did not draw in %v", *timeout)
				failed = true
			case *floodAtStart && n == 0:
				log.Printf("gtkdemo: the flood did not finish in %v", *timeout)
				failed = true
			default:
				if *floodAtStart {
					fmt.Printf("gtkdemo: flood of %d BHs finished in %v\n", n, took.Round(time.Millisecond))
				}
				if err := screenshot(win, *shot); err != nil {
					log.Printf("gtkdemo: %v", err)
					failed = true
				} else {
					fmt.Printf("gtkdemo: the window drew %d times; screenshot %s\n", drawn, *shot)
				}
			}
			quit()
			return false
		})
	} else if *quitAfter > 0 {
		glib.TimeoutAdd(uint(quitAfter.Milliseconds()), func() bool { quit(); return false })
	}
	gtk.Main()
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "gtkdemo:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// screenshot saves the window as PNG, and fails if the picture is one flat colour: a
// window that did not really draw.
func screenshot(win *gtk.Window, path string) error {
	gw, err := win.GetWindow()
	if err != nil {
		return err
	}
	pb, err := gw.PixbufGetFromWindow(0, 0, win.GetAllocatedWidth(), win.GetAllocatedHeight())
	if err != nil {
		return err
	}
	if colours := distinctColours(pb); colours < 2 {
		return fmt.Errorf("the window's picture (%dx%d) is blank: %d colour", pb.GetWidth(), pb.GetHeight(), colours)
	}
	return pb.SavePNG(path, 9)
}

// distinctColours counts the pixel values of a pixbuf, up to 16.
func distinctColours(pb *gdk.Pixbuf) int {
	px, stride, nch := pb.GetPixels(), pb.GetRowstride(), pb.GetNChannels()
	seen := map[string]bool{}
	for y := 0; y < pb.GetHeight() && len(seen) < 16; y++ {
		for x := 0; x < pb.GetWidth() && len(seen) < 16; x++ {
			off := y*stride + x*nch
			seen[string(px[off:off+nch])] = true
		}
	}
	return len(seen)
}
