package factories_test

import (
	"os"
	"strings"
	"testing"

	"github.com/cemaf-go/cemaf/factories"
)

// The README's table documents every variable with its meaning, unit,
// default and accepted range, as Variables does.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Skip("README.md not found")
	}
	readme := string(raw)
	for _, v := range factories.Variables() {
		row := "| `" + v.Env() + "` | " + v.Meaning + " | " + v.Unit + " | " + v.Default + " | " + v.Range + " |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md lacks the row\n%s", row)
		}
	}
}
