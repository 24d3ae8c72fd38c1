package promtext_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/internal/promtext"
)

func TestFamilies(t *testing.T) {
	page := "# HELP a_total As.\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 3\n" +
		"# TYPE d_seconds histogram\nd_seconds_bucket{le=\"+Inf\"} 1\nd_seconds_sum 0.5\nd_seconds_count 1\n"
	types, err := promtext.Families(page)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a_total": "counter", "d_seconds": "histogram"}, types)

	for page, want := range map[string]string{
		"# TYPE a gauge\na 1\n# TYPE a gauge\na 2\n": "line 3: family a declared twice",
		"# TYPE a gauge\nb 1\n":                      "line 2: a sample of b",
		"# TYPE a gauge\na one\n":                    "line 2: \"a one\" is not a sample",
		"# TYPE a meter\n":                           "line 1: \"# TYPE a meter\": not a TYPE line",
		"# TYPE a gauge\na{k=v} 1\n":                 "is not a sample",
		"# TYPE a counter\na_count 1\n":              "a sample of a_count",
	} {
		_, err := promtext.Families(page)
		assert.ErrorContains(t, err, want, page)
	}
}
