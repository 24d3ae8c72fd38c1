//go:build race

package paging_test

// raceEnabled reports that the race detector is on: measurement tests that
// would only measure its overhead skip.
const raceEnabled = true
