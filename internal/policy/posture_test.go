package policy

import "testing"

func TestConditions(t *testing.T) {
	attrs := map[string]string{
		"node:os":            "macos",
		"node:osVersion":     "15.10.1",
		"node:diskEncrypted": "true",
		"node:firewall":      "false",
		"custom:score":       "72",
		"node:clientVersion": "1.2.0-beta1",
	}
	tests := []struct {
		cond string
		want bool
	}{
		{"node:os == 'macos'", true},
		{`node:os == "macos"`, true},
		{"node:os == 'MacOS'", false},
		{"node:os != 'linux'", true},
		{"node:os != 'macos'", false},
		{"node:os IN ['linux', 'macos']", true},
		{"node:os in ['linux','windows']", false},
		{"node:os NOT IN ['linux', 'windows']", true},
		{"node:os NOT IN ['macos']", false},
		{"node:osVersion >= '15.9'", true}, // 15.10 > 15.9
		{"node:osVersion > '15.10'", true},
		{"node:osVersion < '15.10.2'", true},
		{"node:osVersion <= '15.10.1'", true},
		{"node:osVersion >= '16'", false},
		{"node:osVersion >= 15", true},
		{"node:diskEncrypted == true", true},
		{"node:diskEncrypted", true},
		{"node:firewall == true", false},
		{"node:firewall", false},
		{"node:firewall != true", true},
		{"node:firewall == false", true},
		{"node:os == true", false}, // not a boolean: fails
		{"node:os != true", false}, // fails closed too
		{"custom:score >= 70", true},
		{"custom:score < 70.5", false},
		{"custom:score == 72", true},
		{"custom:score IN [71, 72]", true},
		{"node:clientVersion >= '1.2.0'", false}, // a pre-release sorts before the release
		{"node:clientVersion >= '1.2.0-beta'", true},
		{"custom:missing == 'x'", false},
		{"custom:missing != 'x'", false},
		{"custom:missing NOT IN ['x']", false},
		{"custom:missing < '1'", false},
		{"custom:missing NOT SET", true},
		{"custom:missing IS SET", false},
		{"node:os IS SET", true},
		{"node:os not set", false},
	}
	for _, tc := range tests {
		c, _, _, err := parseCond(tc.cond)
		if err != nil {
			t.Errorf("parseCond(%q): %v", tc.cond, err)
			continue
		}
		if got, why := c.eval(attrs); got != tc.want {
			t.Errorf("%q = %v (%s), want %v", tc.cond, got, why, tc.want)
		} else if !got && why == "" {
			t.Errorf("%q failed without a reason", tc.cond)
		}
	}
}

func TestConditionReasons(t *testing.T) {
	attrs := map[string]string{"node:os": "linux", "node:osVersion": "14.2", "node:diskEncrypted": "false", "node:firewall": "maybe"}
	for cond, want := range map[string]string{
		"node:os == 'macos'":          `node:os is "linux" (needs == "macos")`,
		"node:osVersion >= '15.0'":    `node:osVersion is "14.2" (needs >= "15.0")`,
		"node:os IN ['macos']":        `node:os is "linux" (needs IN ["macos"])`,
		"node:screenLock":             `node:screenLock is not reported`,
		"node:diskEncrypted":          `node:diskEncrypted is false (needs == true)`,
		"node:diskEncrypted == true":  `node:diskEncrypted is false (needs == true)`,
		"node:firewall == true":       `node:firewall is "maybe" (needs == true)`,
		"custom:managed IS SET":       `custom:managed is not set`,
		"custom:managed == true":      `custom:managed is not set`,
		"node:os NOT SET":             `node:os is set ("linux")`,
		"node:osVersion < 14":         `node:osVersion is 14.2 (needs < 14)`,
		"node:os NOT IN ['linux']":    `node:os is "linux" (needs NOT IN ["linux"])`,
		"node:osVersion != '14.2'":    `node:osVersion is "14.2" (needs != "14.2")`,
		"node:kernelVersion >= '6.1'": `node:kernelVersion is not reported`,
		"node:osVersion == '14.2' ":   ``,
	} {
		c, _, _, err := parseCond(cond)
		if err != nil {
			t.Fatalf("%q: %v", cond, err)
		}
		if _, why := c.eval(attrs); why != want {
			t.Errorf("%q: reason %q, want %q", cond, why, want)
		}
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"15.10", "15.9", 1},
		{"15.0", "15", 0},
		{"15.0.0", "15", 0},
		{"1.60.0", "1.58.2", 1},
		{"10", "9", 1},
		{"1.2", "1.2-beta", 1},
		{"1.2-beta", "1.2-alpha", 1},
		{"1.2-rc1", "1.2-rc2", -1},
		{"007", "7", 0},
		{"99999999999999999999999", "1", 1},
		{"", "1", -1},
		{"a", "b", -1},
	}
	for _, tc := range tests {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestConditionSyntaxErrors(t *testing.T) {
	for _, s := range []string{
		"", "node:os", "os == 'x'", "node: == 'x'", "node:os === 'x'", "node:os == 'x", "node:os IN 'x'",
		"node:os IN []", "node:os IN ['a' 'b']", "node:os == 'a' extra", "node:os IS", "node:os NOT", "node:os >",
		"node:os == 0x10", "node:os > false", "node:os == inf", "node:os == NaN", "node:os == Infinity",
	} {
		if _, _, _, err := parseCond(s); err == nil && s != "node:os" {
			t.Errorf("parseCond(%q) succeeded", s)
		}
	}
}
