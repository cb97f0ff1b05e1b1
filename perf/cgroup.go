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
