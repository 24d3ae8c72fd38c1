package thermal

// Internals reached by the black-box tests.
var (
	ParseMillidegrees = parseMillidegrees
	ParseModel        = parseModel
	Backoff           = backoff
)
