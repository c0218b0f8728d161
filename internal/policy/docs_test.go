package policy

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDocumentedPolicies parses every example policy Warren ships: the
// files in ops/policy and every ```hujson block of ops/policy/README.md
// and the top-level README.md.
func TestDocumentedPolicies(t *testing.T) {
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	root := filepath.Join(filepath.Dir(here), "..", "..")
	files, err := filepath.Glob(filepath.Join(root, "ops", "policy", "*.hujson"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ops/policy/*.hujson: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s:\n%v", file, err)
		}
	}
	blocks := 0
	for _, doc := range []string{filepath.Join(root, "ops", "policy", "README.md"), filepath.Join(root, "README.md")} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, blk := range hujsonBlocks(string(b)) {
			blocks++
			if _, err := Parse([]byte(blk.text)); err != nil {
				t.Errorf("%s, block at line %d:\n%v", doc, blk.line, err)
			}
		}
	}
	if blocks == 0 {
		t.Error("no ```hujson blocks found in the READMEs")
	}
}

type docBlock struct {
	line int
	text string
}

// hujsonBlocks returns the contents of the ```hujson fenced blocks in md.
func hujsonBlocks(md string) []docBlock {
	var out []docBlock
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```hujson" {
			continue
		}
		start := i + 1
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		out = append(out, docBlock{line: start + 1, text: strings.Join(body, "\n")})
	}
	return out
}
