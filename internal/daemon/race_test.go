//go:build race

package daemon

// raceEnabled: the race detector slows the data plane down tenfold and
// multiplies memory, so measurements of time and heap skip under it.
const raceEnabled = true
