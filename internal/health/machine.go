package health

import "time"

// machine is one real server's health state: up or down, with the current
// run of consecutive successes or failures. An up server goes down after
// fail failures in a row; a down one comes back after rise successes in a
// row. A success resets the failure run and a failure the success run, so
// a server that alternates never changes state (no flapping).
type machine struct {
	up      bool
	checked bool      // at least one probe completed
	ok      int       // consecutive successes
	failed  int       // consecutive failures
	since   time.Time // last state change, or when checking began
}

// observe records a probe's outcome and reports whether the state changed.
func (m *machine) observe(success bool, fail, rise int, now time.Time) bool {
	m.checked = true
	if success {
		m.ok++
		m.failed = 0
		if !m.up && m.ok >= rise {
			m.up, m.since = true, now
			return true
		}
		return false
	}
	m.failed++
	m.ok = 0
	if m.up && m.failed >= fail {
		m.up, m.since = false, now
		return true
	}
	return false
}
