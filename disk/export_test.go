package disk

// Internals reached by the black-box tests.
var UsageFromBlocks = usageFromBlocks

// SetStat replaces the statfs function of g (tests simulate a filling disk).
func SetStat(g *Guard, f func(string) (Usage, error)) { g.stat = f }
