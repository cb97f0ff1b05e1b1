package perf

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroup is a cgroup v2 directory the harness creates for the candidates'
// processes: they start in it (clone3 with CLONE_INTO_CGROUP), so its
// cpu.stat counts every thread and child process of a candidate (Kamailio's
// workers too), to the microsecond, including the softirq work the kernel
// runs in their context. cpu.stat exists whether or not the cpu controller
// is enabled.
type cgroup struct {
	dir string
	fd  *os.File
}

// errNoCgroup: no writable cgroup v2 hierarchy; the harness falls back to
// /proc/PID/stat.
var errNoCgroup = errors.New("no writable cgroup v2 hierarchy")

// newCgroup creates a child of the harness's own cgroup v2.
func newCgroup(name string) (*cgroup, error) {
	mnt := cgroup2Mount()
	if mnt == "" {
		return nil, errNoCgroup
	}
	own := "/"
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(l, "0::"); ok {
				own = p
			}
		}
	}
	dir := filepath.Join(mnt, own, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("%w: %v", errNoCgroup, err)
	}
	fd, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("%w: %v", errNoCgroup, err)
	}
	c := &cgroup{dir: dir, fd: fd}
	if _, _, err := c.usage(); err != nil {
		c.remove()
		return nil, fmt.Errorf("%w: %v", errNoCgroup, err)
	}
	return c, nil
}

// cgroup2Mount finds the cgroup v2 mount point in /proc/self/mountinfo
// ("/sys/fs/cgroup" on a pure v2 host, "/sys/fs/cgroup/unified" on a hybrid
// one), or "".
func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent major:minor root mountpoint options ... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4]
		}
	}
	return ""
}

// usage returns the cgroup's CPU time and its user part, in seconds.
func (c *cgroup) usage() (total, user float64, err error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cpu.stat"))
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, " ")
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "usage_usec":
			total = float64(n) / 1e6
			found++
		case "user_usec":
			user = float64(n) / 1e6
			found++
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("%s: no usage_usec/user_usec", c.dir)
	}
	return total, user, nil
}

// remove deletes the cgroup, waiting briefly for exiting processes to leave.
func (c *cgroup) remove() {
	if c.fd != nil {
		c.fd.Close()
	}
	for range 50 {
		if err := os.Remove(c.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuWait is how long runnable tasks waited for a CPU: the cgroup's (or the
// machine's) pressure stall ("some" total: time in which at least one of
// its tasks was runnable and not running) and each thread's run-queue
// delay (/proc/TID/schedstat), all in seconds.
type cpuWait struct {
	some    float64
	threads map[int]threadWait
}

// threadWait is one thread's run time and run-queue delay (seconds) and
// its time slices, from /proc/TID/schedstat.
type threadWait struct {
	run, wait float64
	slices    uint64
}

// waits reads the cgroup's CPU pressure and its threads' run-queue delays.
func (c *cgroup) waits() (cpuWait, error) {
	w := cpuWait{threads: map[int]threadWait{}}
	var err error
	if w.some, err = readPressure(filepath.Join(c.dir, "cpu.pressure")); err != nil {
		return w, err
	}
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.threads"))
	if err != nil {
		return w, err
	}
	for _, f := range strings.Fields(string(b)) {
		tid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if t, err := readSchedstat(fmt.Sprintf("/proc/%d/schedstat", tid)); err == nil {
			w.threads[tid] = t
		}
	}
	return w, nil
}

// readPressure returns the "some" total of a PSI file, in seconds.
func readPressure(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parsePressure(string(b))
}

func parsePressure(s string) (float64, error) {
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "some ") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				return float64(n) / 1e6, err
			}
		}
	}
	return 0, errors.New("no \"some … total=\" line")
}

func readSchedstat(path string) (threadWait, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return threadWait{}, err
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return threadWait{}, fmt.Errorf("%s: %d fields", path, len(f))
	}
	var v [3]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return threadWait{}, err
		}
	}
	return threadWait{run: float64(v[0]) / 1e9, wait: float64(v[1]) / 1e9, slices: v[2]}, nil
}
