# glibaio: see README.md. `make test` and `make demo` are the two set-up commands.
GO      ?= go
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := pkg-config libglib2.0-dev libgtk-3-dev liburing-dev
# gotk4's core/glib (glibloop/gotk4test) needs only GLib's gobject-2.0 and gio-2.0;
# cshim's io_uring engine links liburing (Debian 12 ships 2.3).
PC_PKGS  := glib-2.0 gobject-2.0 gio-2.0 gtk+-3.0 liburing

# The packages whose tests check allocations: they run a second time without the race
# detector, whose instrumentation allocates. Found by grep, so a new one is not missed.
ALLOC_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' -E 'func Test[A-Za-z0-9_]*Allocs' .)))

.PHONY: deps qemu xvfb build test test-cgocheck2 test-asan check check-qmp check-gtkdemo bench lint demo api

# deps installs the C libraries with apt-get, only when pkg-config cannot find them.
deps:
	@if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists $(PC_PKGS); then \
		echo "deps: glib-2.0 $$(pkg-config --modversion glib-2.0), gtk+-3.0 $$(pkg-config --modversion gtk+-3.0), liburing $$(pkg-config --modversion liburing) found"; \
	else \
		echo "deps: installing $(APT_PKGS)"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(APT_PKGS); \
	fi

# qemu installs Debian's qemu-system-x86 with apt-get, only when qemu-system-x86_64 is
# missing: the QMP conformance test compares aiodemo with it.
qemu:
	@if command -v qemu-system-x86_64 >/dev/null 2>&1; then \
		echo "qemu: $$(qemu-system-x86_64 --version | head -1) found"; \
	else \
		echo "qemu: installing qemu-system-x86"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y qemu-system-x86; \
	fi

# xvfb installs Debian's xvfb (xvfb-run, and xauth, which it needs) with apt-get, only
# when xvfb-run is missing: check-gtkdemo runs the GTK window on it.
xvfb:
	@if command -v xvfb-run >/dev/null 2>&1 && command -v xauth >/dev/null 2>&1; then \
		echo "xvfb: xvfb-run found"; \
	else \
		echo "xvfb: installing xvfb xauth"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y xvfb xauth; \
	fi

build: deps
	$(GO) build ./...

# test: the whole suite under the race detector (the API listing and the toolkit-free
# dependency check included), then the allocation checks, which only mean something
# without the race detector's instrumentation, in the packages that have them. Each
# package is built once per mode; go test runs vet's quick checks, make lint the rest.
test: deps
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run 'Allocs' $(ALLOC_PKGS)

# test-cgocheck2: the suite with the runtime checking every pointer C stores.
test-cgocheck2: deps
	GOEXPERIMENT=cgocheck2 $(GO) test -count=1 ./...

# test-asan: the suite under AddressSanitizer, LeakSanitizer included.
test-asan: deps
	ASAN_OPTIONS=fast_unwind_on_malloc=0 $(GO) test -asan -count=1 ./...

# check: the long runs. The suite under cgocheck2 and AddressSanitizer (LeakSanitizer
# included); the model tests (the AioContext's, per mode, and the file I/O engine's) at
# 10,000 sequences; a minute of fuzzing for each target; the stress tests at full size
# (1,000,000 BHs, 10,000 fds, 1,000 hostile clients); and a 10-minute soak of aiodemo
# under load. make test runs the quick form of each. Then the QMP conformance test
# against a real QEMU and gtkdemo's window under Xvfb (check-qmp, check-gtkdemo).
check: deps test-cgocheck2 test-asan check-qmp check-gtkdemo
	$(GO) test -count=1 -run 'TestModel|TestFileModel' ./aiosource -rapid.checks=10000
	$(GO) test -run='^$$' -fuzz=FuzzAioOps -fuzztime=60s ./aiosource
	$(GO) test -run='^$$' -fuzz=FuzzParseRequest -fuzztime=60s ./cmd/aiodemo
	GLIBAIO_STRESS=full $(GO) test -count=1 -run 'Stress|OneshotRingModel' -timeout 30m -v ./aiosource ./cmd/aiodemo
	GLIBAIO_SOAK=10m $(GO) test -count=1 -run 'TestSoak' -timeout 30m -v ./cmd/aiodemo

# check-qmp: the same byte streams to a real QEMU (qemu-system-x86_64 -machine none)
# and to aiodemo; the shape of every reply is compared (cmd/aiodemo/conformance_test.go).
check-qmp: deps qemu
	$(GO) test -count=1 -run '^TestQMPConformance$$' -v ./cmd/aiodemo

# check-gtkdemo: the real gotk3 window on an X server in memory. gtkdemo floods 1,000,000
# BHs, waits for the window to draw and the flood to finish, and saves a screenshot; it
# fails if either did not happen or the picture is blank. make test needs no display.
check-gtkdemo: deps xvfb
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(GO) build -o "$$dir/gtkdemo" ./cmd/gtkdemo && \
	xvfb-run -a -s "-screen 0 1024x768x24" "$$dir/gtkdemo" -flood -screenshot "$$dir/gtkdemo.png" && \
	test -s "$$dir/gtkdemo.png"

# bench: cmd/aiobench's side-by-side table (and its chart) over 5 whole runs: each row's
# median and range, pass or fail on the median; then the go test benchmarks.
bench: deps
	$(GO) run ./cmd/aiobench -count 5 -svg docs/fd-scaling.svg
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

# api: rewrite the golden listings of the public packages' exported API in api/, after an
# intended API change (make test checks them; see internal/apicheck).
api:
	$(GO) test -count=1 -v -run '^TestAPI$$' ./internal/apicheck -update

# lint: what a maintainer checks besides the tests: formatting and import groups
# (standard library, third party, this module), vet, staticcheck, a tidy go.mod, and the
# API listing (also part of make test). CI runs it after make test.
lint: deps
	gofmt -l . | (! grep .)
	$(GO) run golang.org/x/tools/cmd/goimports@v0.52.0 -local github.com/glibaio/glibaio -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) mod tidy -diff
	$(GO) test -count=1 -run '^TestAPI$$' ./internal/apicheck

# demo: the main job. It starts the monitor server and drives it over its real socket
# with a scripted session that covers every command.
demo: deps
	$(GO) run ./cmd/aiodemo demo
