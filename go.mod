module github.com/warrenmesh/warren

go 1.26.8

require (
	github.com/coder/websocket v1.8.15
	github.com/flynn/noise v1.1.0
	go.uber.org/goleak v1.3.0
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)
