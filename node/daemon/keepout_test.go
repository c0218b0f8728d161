package daemon

import (
	"fmt"
	"testing"
)

// TestCoordinatorAddrs: a coordinator named by IP is kept out of subnet
// routes; a name is not resolved (nil: nothing to keep out).
func TestCoordinatorAddrs(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.77.1.1:8080":          "[10.77.1.1]",
		"https://[2001:db8::1]/":         "[2001:db8::1]",
		"https://[::ffff:192.0.2.1]:443": "[192.0.2.1]",
		"https://warren.example.com":     "none",
		"://bad":                         "none",
	} {
		got := "none"
		if f := coordinatorAddrs(in); f != nil {
			got = fmt.Sprint(f())
		}
		if got != want {
			t.Errorf("coordinatorAddrs(%q) = %s, want %s", in, got, want)
		}
	}
}
