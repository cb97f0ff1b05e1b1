package perf

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go supports (the kernel exports it so for user space).
const clockTick = 100

// procUserSys returns utime and stime of process pid in seconds.
func procUserSys(pid int) (user, sys float64, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// After ")": state(0) ppid(1) … utime(11) stime(12).
	if len(f) < 13 {
		return 0, 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return float64(u) / clockTick, float64(st) / clockTick, true
}

// nsPIDs lists the processes whose network namespace is ns (what
// `ip netns pids` prints), read from /proc directly.
func nsPIDs(ns string) []int {
	target, err := os.Stat(filepath.Join("/run/netns", ns))
	if err != nil {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		st, err := os.Stat(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err == nil && os.SameFile(st, target) {
			out = append(out, pid)
		}
	}
	return out
}

// cpuSnap is the CPU time of the balancer's processes and of the machine.
type cpuSnap struct {
	procs   map[int]float64
	user    map[int]float64
	softirq float64 // machine-wide softirq seconds (/proc/stat)
	busy    float64 // machine-wide non-idle seconds
}

func snapCPU(pids []int) cpuSnap {
	s := cpuSnap{procs: map[int]float64{}, user: map[int]float64{}}
	for _, p := range pids {
		if u, st, ok := procUserSys(p); ok {
			s.procs[p] = u + st
			s.user[p] = u
		}
	}
	s.softirq, s.busy = machineCPU()
	return s
}

// delta returns the balancer processes' CPU seconds (and the user part), and the machine's
// softirq and busy seconds, between a and b.
func (a cpuSnap) delta(b cpuSnap) (proc, user, softirq, busy float64) {
	for p, c := range b.procs {
		proc += c - a.procs[p] // a process born in between counts whole
		user += b.user[p] - a.user[p]
	}
	return proc, user, b.softirq - a.softirq, b.busy - a.busy
}

// machineCPU reads the aggregate "cpu" line of /proc/stat.
func machineCPU() (softirq, busy float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var v [10]float64
	for i := 1; i < len(f) && i <= 10; i++ {
		x, _ := strconv.ParseUint(f[i], 10, 64)
		v[i-1] = float64(x) / clockTick
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	return v[6], busy
}
