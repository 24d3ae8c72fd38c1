package thermal

// Internals reached by the black-box tests.
var (
	ParseMillidegrees = parseMillidegrees
	ParseModel        = parseModel
)

// Name parsers of the zone scan.
var (
	ZoneNumber = zoneNumber
	TripIndex  = tripIndex
)
