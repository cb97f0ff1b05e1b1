package pipeline

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"unicode"
)

// TestReasonTable checks the one table of reasons: every reason has a
// distinct name, and its name is its Go name in snake_case (the Go name
// and the metric label agree: ReasonTemplateOverflow is "template_overflow").
func TestReasonTable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "decision.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var goNames []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for _, id := range vs.Names {
				if strings.HasPrefix(id.Name, "Reason") {
					goNames = append(goNames, id.Name)
				}
			}
		}
		return true
	})
	if len(goNames) != int(NumReasons) {
		t.Fatalf("%d Reason constants in decision.go, NumReasons %d", len(goNames), NumReasons)
	}
	seen := map[string]bool{}
	for r := range NumReasons {
		name := r.String()
		if name == "" || seen[name] {
			t.Errorf("reason %d: name %q empty or repeated", r, name)
		}
		seen[name] = true
		if want := snake(strings.TrimPrefix(goNames[r], "Reason")); name != want {
			t.Errorf("%s is %q, want %q", goNames[r], name, want)
		}
	}
	if NumReasons.String() != "unknown" || NumReasons.Verdict() != Drop {
		t.Error("an unknown reason must read unknown and drop")
	}
}

// snake turns CamelCase with initialisms (NATReply, NotIP) into snake_case.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, c := range rs {
		if i > 0 && unicode.IsUpper(c) &&
			(unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
