package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadAuthKey: the pre-auth key can come from a file or stdin, so it
// does not show in ps; --auth-key KEY still works. (TestCLIAgainstRealDaemons
// joins real nodes with a key file and with stdin.)
func TestReadAuthKey(t *testing.T) {
	const key = "wpk_0123456789abcdef"
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	file := write("key", key+"\n")
	crlf := write("crlf", " "+key+"\r\n")
	empty := write("empty", "\n")
	twoLines := write("two", key+"\nsecond\n")
	big := write("big", strings.Repeat("k", 1<<20))
	tests := []struct {
		name          string
		flagKey, file string
		stdin         string
		wantErr       string // empty: want key
	}{
		{"neither", "", "", "", ""},
		{"flag", key, "", "", ""},
		{"file", "", file, "", ""},
		{"file with CRLF and spaces", "", crlf, "", ""},
		{"file from stdin", "", "-", key + "\n", ""},
		{"flag from stdin", "-", "", key + "\r\n", ""},
		{"stdin without newline", "-", "", key, ""},
		{"both", key, file, "", "not both"},
		{"stdin twice", "-", "-", key, "not both"},
		{"missing file", "", filepath.Join(dir, "missing"), "", "no such file"},
		{"empty file", "", empty, "", "is empty"},
		{"empty stdin", "-", "", "", "is empty"},
		{"two lines", "", twoLines, "", "one line"},
		{"two lines on stdin", "-", "", key + "\nmore", "one line"},
		{"huge file", "", big, "", "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAuthKey(tt.flagKey, tt.file, strings.NewReader(tt.stdin))
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readAuthKey = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("readAuthKey: %v", err)
			case tt.name == "neither" && got != "":
				t.Fatalf("readAuthKey = %q with no key given", got)
			case tt.name != "neither" && got != key:
				t.Fatalf("readAuthKey = %q, want %q", got, key)
			}
		})
	}
}

// TestUpChecksKeySourceFirst: warren up reports a bad key source before it
// contacts warrend (here there is none to contact).
func TestUpChecksKeySourceFirst(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--socket", sock, "up", "--auth-key", "-"}, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("up with an empty stdin: %v", err)
	}
}

// TestUpHelpWarnsAboutPS: the help says --auth-key KEY is visible to other
// local users and names the alternatives.
func TestUpHelpWarnsAboutPS(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"up", "--help"}, strings.NewReader(""), &out, &errOut)
	if err == nil {
		t.Log("up --help returned no error")
	}
	help := errOut.String()
	for _, want := range []string{"--auth-key-file", "visible to other local users"} {
		if !strings.Contains(help, want) {
			t.Errorf("warren up --help does not mention %q:\n%s", want, help)
		}
	}
	var usage bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, strings.NewReader(""), &usage, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(usage.String(), "--auth-key-file") {
		t.Errorf("warren --help does not mention --auth-key-file:\n%s", usage.String())
	}
}

// FuzzReadKeyFrom: whatever a key file holds, readKeyFrom returns one
// non-empty line without surrounding space, or an error.
func FuzzReadKeyFrom(f *testing.F) {
	f.Add("wpk_0123456789abcdef\n")
	f.Add("\r\n")
	f.Add("a\nb")
	f.Add(" \t wpk_x \r\n")
	f.Fuzz(func(t *testing.T, in string) {
		key, err := readKeyFrom("fuzz", strings.NewReader(in))
		if err != nil {
			if key != "" {
				t.Fatalf("error %v with key %q", err, key)
			}
			return
		}
		if key == "" || strings.ContainsAny(key, "\r\n") || strings.TrimSpace(key) != key || len(key) > maxAuthKeyFile {
			t.Fatalf("readKeyFrom(%q) = %q", in, key)
		}
	})
}
