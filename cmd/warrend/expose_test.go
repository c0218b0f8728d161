package main

import (
	"strings"
	"testing"

	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/expose"
)

func TestParseExpose(t *testing.T) {
	tests := []struct {
		in      string
		want    daemon.Expose
		wantErr string
	}{
		{in: "80", want: daemon.Expose{Port: 80, Target: "127.0.0.1:80"}},
		{in: "80=127.0.0.1:8080", want: daemon.Expose{Port: 80, Target: "127.0.0.1:8080"}},
		{in: "80=[::1]:8080,http-identity", want: daemon.Expose{Port: 80, Target: "[::1]:8080", Mode: expose.HTTPIdentity}},
		{in: "5432=127.0.0.1:5432,proxy-protocol", want: daemon.Expose{Port: 5432, Target: "127.0.0.1:5432", Mode: expose.ProxyProtocol}},
		{in: "5432,PROXY-PROTOCOL", want: daemon.Expose{Port: 5432, Target: "127.0.0.1:5432", Mode: expose.ProxyProtocol}},
		{in: "22=db:22,tcp", want: daemon.Expose{Port: 22, Target: "db:22"}},
		{in: "0=127.0.0.1:1", wantErr: "want PORT"},
		{in: "http", wantErr: "want PORT"},
		{in: "70000", wantErr: "want PORT"},
		{in: ",http-identity", wantErr: "want PORT"},
		{in: "80=127.0.0.1", wantErr: "target must be HOST:PORT"},
		{in: "80=127.0.0.1:8080,", wantErr: "nothing after the comma"},
		{in: "80=127.0.0.1:8080,https", wantErr: `unknown mode "https"`},
		{in: "80=127.0.0.1:8080,http-identity,proxy-protocol", wantErr: "unknown mode"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseExpose(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseExpose(%q) = %+v, %v; want an error saying %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseExpose(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}
