package perf

import (
	"fmt"
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

// cpuSnap is one reading of the CPU clocks a run is measured with.
type cpuSnap struct {
	cand, candUser float64 // the candidate: its cgroup, else its processes
	self           float64 // the harness's process: generator and sinks
	kthreads       float64 // the kernel's softirq and NAPI threads
	softirq, busy  float64 // machine-wide (/proc/stat)
	procs          map[int][2]float64
}

// clocks says where a run's CPU time is read: the candidates' cgroup (nil:
// the processes in the balancer's namespace, pids) and the kernel threads.
type clocks struct {
	cg       *cgroup
	kthreads []int
}

func (c clocks) snap(pids []int) cpuSnap {
	s := cpuSnap{procs: map[int][2]float64{}}
	if c.cg != nil {
		s.cand, s.candUser, _ = c.cg.usage()
	} else {
		for _, p := range pids {
			if u, st, ok := procUserSys(p); ok {
				s.procs[p] = [2]float64{u + st, u}
			}
		}
	}
	if u, st, ok := procUserSys(os.Getpid()); ok {
		s.self = u + st
	}
	for _, p := range c.kthreads {
		if u, st, ok := procUserSys(p); ok {
			s.kthreads += u + st
		}
	}
	s.softirq, s.busy = machineCPU()
	return s
}

// cpuDelta is the CPU time spent between two snapshots, in seconds.
type cpuDelta struct {
	cand, candUser, self, kthreads, softirq, busy float64
}

func (a cpuSnap) delta(b cpuSnap) cpuDelta {
	d := cpuDelta{cand: b.cand - a.cand, candUser: b.candUser - a.candUser, self: b.self - a.self,
		kthreads: b.kthreads - a.kthreads, softirq: b.softirq - a.softirq, busy: b.busy - a.busy}
	for p, c := range b.procs {
		d.cand += c[0] - a.procs[p][0] // a process born in between counts whole
		d.candUser += c[1] - a.procs[p][1]
	}
	return d
}

// lab is the CPU time of everything the run consists of: the candidate, the
// harness (generator, sinks) and the kernel threads that ran its softirq
// work; other processes on the machine are not in it.
func (d cpuDelta) lab() float64 { return d.cand + d.self + d.kthreads }

// kernelThreads lists the PIDs of the kernel threads that run network
// softirq work outside a process's context: ksoftirqd/N, and the NAPI
// threads of interfaces in threaded mode. (In a PID namespace that hides
// them the list is empty and the lab figure misses their share.)
func kernelThreads() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		c := strings.TrimSpace(string(b))
		if strings.HasPrefix(c, "ksoftirqd/") || strings.HasPrefix(c, "napi/") {
			out = append(out, pid)
		}
	}
	return out
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

// ctxSwitches sums the context switches, voluntary (a thread that blocked:
// ppoll, futex, nanosleep) and not (one the scheduler preempted), of every
// thread of pids (/proc/PID/task/TID/status). Threads that exit between
// two readings drop out of the second: the candidates' threads live as
// long as they do.
func ctxSwitches(pids []int) uint64 {
	var n uint64
	for _, p := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", p))
		for _, t := range tasks {
			b, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(l, ":")
				if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
					c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
					n += c
				}
			}
		}
	}
	return n
}
