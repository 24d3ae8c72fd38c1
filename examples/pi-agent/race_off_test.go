//go:build !race

package main

// raceEnabled: the race detector is on. Its shadow memory multiplies the
// process's resident set, so the memory-bound tests measure the detector,
// not the agent, and skip.
const raceEnabled = false
