// Package promtext checks a page in the Prometheus text exposition format
// (version 0.0.4), for the tests of the packages that write one: every
// line follows the format's grammar, every sample belongs to the family
// declared just before it, and no family is declared twice (which a
// scraper refuses).
package promtext

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$`)
	typeLine   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$`)
	helpLine   = regexp.MustCompile(`^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$`)
)

// Families checks page and returns the type of each family it declares,
// by name. The error names the first offending line (1-based) and why.
func Families(page string) (map[string]string, error) {
	types := map[string]string{}
	current := ""
	for i, line := range strings.Split(strings.TrimSuffix(page, "\n"), "\n") {
		n := i + 1
		switch {
		case strings.HasPrefix(line, "# HELP "):
			if !helpLine.MatchString(line) {
				return nil, fmt.Errorf("line %d: %q: not a HELP line", n, line)
			}
		case strings.HasPrefix(line, "# TYPE "):
			m := typeLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: %q: not a TYPE line", n, line)
			}
			if _, dup := types[m[1]]; dup {
				return nil, fmt.Errorf("line %d: family %s declared twice", n, m[1])
			}
			types[m[1]], current = m[2], m[1]
		default:
			m := sampleLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("line %d: %q is not a sample", n, line)
			}
			name := m[1]
			if types[current] == "histogram" {
				for _, suffix := range [...]string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(name, suffix); ok {
						name = base
						break
					}
				}
			}
			if name != current {
				return nil, fmt.Errorf("line %d: a sample of %s under the family %q declared before it", n, m[1], current)
			}
		}
	}
	return types, nil
}
