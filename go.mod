module github.com/glibaio/glibaio

go 1.26.0

require (
	github.com/gotk3/gotk3 v0.6.3 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	pgregory.net/rapid v1.3.0 // indirect
)
