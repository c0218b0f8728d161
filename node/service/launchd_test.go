package service

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// plistValue is one value of a property list, read back with
// encoding/xml.
type plistValue struct {
	XMLName xml.Name
	Text    string       `xml:",chardata"`
	Items   []plistValue `xml:",any"`
}

// readPlist parses a property list whose top level is a dict into a map
// from key to value.
func readPlist(t *testing.T, data []byte) map[string]plistValue {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root struct {
		XMLName xml.Name
		Version string     `xml:"version,attr"`
		Dict    plistValue `xml:"dict"`
	}
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("plist is not XML: %v\n%s", err, data)
	}
	if root.XMLName.Local != "plist" || root.Version != "1.0" {
		t.Fatalf("root element %s version %q, want plist 1.0", root.XMLName.Local, root.Version)
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if cd, ok := tok.(xml.CharData); err != nil || !ok || len(bytes.TrimSpace(cd)) > 0 {
			t.Fatalf("content after </plist>: %v %v", tok, err)
		}
	}
	items := root.Dict.Items
	if len(items)%2 != 0 {
		t.Fatalf("dict has %d items, want key/value pairs", len(items))
	}
	m := map[string]plistValue{}
	for i := 0; i < len(items); i += 2 {
		if items[i].XMLName.Local != "key" {
			t.Fatalf("dict item %d is <%s>, want <key>", i, items[i].XMLName.Local)
		}
		m[items[i].Text] = items[i+1]
	}
	return m
}

func TestLaunchdPlist(t *testing.T) {
	c := Config{Name: "warrend", Executable: "/usr/local/bin/warrend",
		Args: []string{"--state-dir", "/var/lib/warren", "--socket-group", "warren", "--note", `<a & "b">`}}
	d := readPlist(t, LaunchdPlist(c))
	if got := d["Label"]; got.XMLName.Local != "string" || got.Text != "com.warrenmesh.warrend" {
		t.Errorf("Label = <%s>%s, want the string com.warrenmesh.warrend", got.XMLName.Local, got.Text)
	}
	args := d["ProgramArguments"]
	if args.XMLName.Local != "array" {
		t.Fatalf("ProgramArguments is <%s>, want <array>", args.XMLName.Local)
	}
	want := append([]string{c.Executable}, c.Args...)
	if len(args.Items) != len(want) {
		t.Fatalf("ProgramArguments has %d items, want %d", len(args.Items), len(want))
	}
	for i, it := range args.Items {
		if it.XMLName.Local != "string" || it.Text != want[i] {
			t.Errorf("ProgramArguments[%d] = <%s>%q, want %q", i, it.XMLName.Local, it.Text, want[i])
		}
	}
	for _, k := range []string{"RunAtLoad", "KeepAlive"} {
		if d[k].XMLName.Local != "true" {
			t.Errorf("%s = <%s/>, want <true/>", k, d[k].XMLName.Local)
		}
	}
	if got := d["StandardErrorPath"].Text; got != "/var/log/warrend.log" {
		t.Errorf("StandardErrorPath = %q", got)
	}
}

// packagedDarwin is the daemon the macOS tarball's plist describes: the
// binaries in /usr/local/bin and the flags install-service carries by
// default.
var packagedDarwin = Config{
	Name:       "warrend",
	Executable: "/usr/local/bin/warrend",
	Args:       []string{"--state-dir", "/var/lib/warren", "--socket-group", "warren"},
}

// TestPackagedPlist keeps ops/launchd/com.warrenmesh.warrend.plist (in the
// macOS tarball) the generator's output, so that it and install-service's
// agree.
func TestPackagedPlist(t *testing.T) {
	path := filepath.Join("..", "..", "ops", "launchd", LaunchdLabel(packagedDarwin)+".plist")
	got := LaunchdPlist(packagedDarwin)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from LaunchdPlist (go test ./node/service -run TestPackaged -update rewrites it):\n%s", path, got)
	}
	if args := readPlist(t, got)["ProgramArguments"].Items; len(args) != 5 || args[0].Text != "/usr/local/bin/warrend" {
		t.Errorf("ProgramArguments %+v", args)
	}
}
