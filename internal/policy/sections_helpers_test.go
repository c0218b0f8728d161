package policy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
)

// diagCase is a policy that must be rejected: each ‸ in src marks where
// an error must point, and want holds the errors' message prefixes in
// file order. Every error must carry a hint.
type diagCase struct {
	name string
	src  string
	want []string
}

func runDiagCases(t *testing.T, cases []diagCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, marks := unmark(tc.src)
			if len(marks) != len(tc.want) {
				t.Fatalf("test case has %d marks for %d errors", len(marks), len(tc.want))
			}
			p, err := Parse([]byte(src))
			if err == nil {
				t.Fatalf("Parse succeeded: %v", p.Warnings())
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			for i, w := range tc.want {
				want := fmt.Sprintf("%d:%d: %s", marks[i][0], marks[i][1], w)
				if !strings.HasPrefix(es[i].Error(), want) {
					t.Errorf("error %d:\n got %s\nwant %s...", i, es[i], want)
				}
				if es[i].Hint == "" {
					t.Errorf("error %d has no hint: %s", i, es[i])
				}
			}
		})
	}
}

// warnCase is a policy that must load with exactly the warnings whose
// messages contain want, in file order; each ‸ marks where one must point.
type warnCase struct {
	name string
	src  string
	want []string
}

func runWarnCases(t *testing.T, cases []warnCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, marks := unmark(tc.src)
			if len(marks) != len(tc.want) {
				t.Fatalf("test case has %d marks for %d warnings", len(marks), len(tc.want))
			}
			p := mustParse(t, src)
			ws := p.Warnings()
			sort.SliceStable(ws, func(i, j int) bool {
				return ws[i].Line < ws[j].Line || (ws[i].Line == ws[j].Line && ws[i].Col < ws[j].Col)
			})
			if len(ws) != len(tc.want) {
				t.Fatalf("got warnings %v, want %q", ws, tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(ws[i].Message, w) || ws[i].Hint == "" {
					t.Errorf("warning %d: %v, want %q", i, ws[i], w)
				}
				if ws[i].Line != marks[i][0] || ws[i].Col != marks[i][1] {
					t.Errorf("warning %d at %d:%d, want %d:%d", i, ws[i].Line, ws[i].Col, marks[i][0], marks[i][1])
				}
			}
		})
	}
}
