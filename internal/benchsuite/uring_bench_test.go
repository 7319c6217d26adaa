package benchsuite

import (
	"fmt"
	"testing"

	"github.com/glibaio/glibaio/internal/cbaseline"
)

// The go test benchmarks behind the io_uring rows: 4 KiB random reads from a
// page-cached 64 MiB file, at queue depth 1 and 32, through ReadAt, through thread-pool
// Submit(pread), and in the C loop on liburing.
func BenchmarkURingReads(b *testing.B) {
	rf, err := NewReadFile("")
	if err != nil {
		b.Fatal(err)
	}
	defer rf.Close()
	for _, qd := range []int{1, 32} {
		l, err := NewReadLoop(rf, qd)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(qdName("glibaio-ReadAt", qd), func(b *testing.B) {
			b.ReportAllocs()
			l.Ring(b.N)
			if err := l.Err(); err != nil {
				b.Fatal(err)
			}
		})
		b.Run(qdName("thread-pool-Submit", qd), func(b *testing.B) {
			b.ReportAllocs()
			l.Pool(b.N)
			if err := l.Err(); err != nil {
				b.Fatal(err)
			}
		})
		b.Run(qdName("C-liburing", qd), func(b *testing.B) {
			if _, err := cbaseline.URingReads(rf.FD(), rf.Offs, b.N, qd, false); err != nil {
				b.Fatal(err)
			}
		})
		l.Close()
	}
}

func qdName(s string, qd int) string { return fmt.Sprintf("%s/qd%02d", s, qd) }
