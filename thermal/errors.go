package thermal

import "errors"

// ErrNoSensors is returned by New when no usable temperature sensor exists:
// the thermal class directory has no zones, or every zone is disabled,
// unreadable or excluded by the board table. Poll returns an error wrapping
// it when none of the chosen sensors could be read this time.
var ErrNoSensors = errors.New("thermal: no usable temperature sensor")
