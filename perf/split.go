package perf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Split is where a candidate's CPU time went: perf(1) samples of its
// processes on the software clock (the VM has no hardware counters), with
// call chains, during one drop-point run, each sample put in one category by
// its stack (see classify).
type Split struct {
	Samples int `json:"samples"`
	// Shares is the fraction of samples per category (SplitCategories).
	Shares map[string]float64 `json:"shares"`
	// Top are the most sampled leaf functions with their shares.
	Top []string `json:"top"`
	// PPS is the drop point's rate during the recorded run (perf's own
	// cost slows the candidate a little).
	PPS float64 `json:"pps"`
}

// SplitCategories are Split's categories, in the report's order.
var SplitCategories = []string{
	"tx",                 // a send system call's own work (sendto on an XSK, write, sendmmsg)
	"tx inline delivery", // softirq work run inside a send: veth delivers to the next hop there
	"rx",                 // a receive system call (recvfrom, recvmmsg, read)
	"waiting",            // ppoll, epoll, futex, nanosleep… outside the scheduler itself
	"scheduling",         // context switches (__schedule, finish_task_switch)
	"interrupts",         // IRQs, IPIs and softirqs outside a system call
	"user",               // the program's own code
	"go runtime",         // the Go runtime's user code (scheduler, GC, timers)
	"other kernel",
}

// perfSplit runs one extra drop-point run with perf recording the
// candidate's processes and stores the split in cr.Split.
func (h *harness) perfSplit(ctx context.Context, cr *CandidateResult, r *running) error {
	if r.softirq {
		return nil // no process
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("perf split: %w (Debian package linux-perf)", err)
	}
	pids := h.candidatePIDs()
	if len(pids) == 0 {
		return errors.New("perf split: no candidate process")
	}
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	data := filepath.Join(h.env.dir, "perf.data")
	ctl, ack := filepath.Join(h.env.dir, "perf.ctl"), filepath.Join(h.env.dir, "perf.ack")
	for _, f := range []string{ctl, ack} {
		os.Remove(f)
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			return fmt.Errorf("perf split: %w", err)
		}
	}
	// Started disabled (-D -1) and enabled through its control FIFO, which
	// acknowledges: the run starts only once perf records.
	rec := exec.CommandContext(ctx, perf, "record", "-q", "-e", "cpu-clock", "-F", "4999", "-g", "-D", "-1",
		"--control", "fifo:"+ctl+","+ack, "-o", data, "-p", strings.Join(ps, ","))
	var stderr bytes.Buffer
	rec.Stderr = &stderr
	if err := rec.Start(); err != nil {
		return fmt.Errorf("perf split: %w", err)
	}
	stop := func() error {
		_ = rec.Process.Signal(syscall.SIGINT)
		if err := rec.Wait(); err != nil && !strings.Contains(err.Error(), "interrupt") {
			return fmt.Errorf("perf record: %v: %s", err, firstLines(stderr.String(), 3))
		}
		return nil
	}
	if err := perfControl(ctl, ack, "enable", 10*time.Second); err != nil {
		stop()
		return fmt.Errorf("perf split: %w: %s", err, firstLines(stderr.String(), 3))
	}
	run, err := h.dropRun(cr, r)
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, perf, "script", "-i", data, "-F", "comm,tid,ip,sym,dso").Output()
	if err != nil {
		return fmt.Errorf("perf script: %w", err)
	}
	s := splitSamples(out)
	s.PPS = run.DeliveredPPS
	cr.Split = s
	logf(h.o.Log, "perf split %-28s %d samples at %.0f pkt/s: %s", cr.Name, s.Samples, s.PPS, s.summary())
	return nil
}

// perfControl sends cmd to perf record's control FIFO and waits for its
// acknowledgement, within timeout.
func perfControl(ctl, ack, cmd string, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		c, err := os.OpenFile(ctl, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		a, err := os.OpenFile(ack, os.O_RDONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer a.Close()
		if _, err := c.WriteString(cmd + "\n"); err != nil {
			done <- err
			return
		}
		buf := make([]byte, 16)
		n, err := a.Read(buf)
		if err == nil && !strings.HasPrefix(string(buf[:n]), "ack") {
			err = fmt.Errorf("perf control: %q", buf[:n])
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return errors.New("perf record did not acknowledge its control command")
	}
}

// candidatePIDs are the candidate's processes: its cgroup's, else those in
// the balancer's namespace.
func (h *harness) candidatePIDs() []int {
	if h.clocks.cg != nil {
		b, err := os.ReadFile(filepath.Join(h.clocks.cg.dir, "cgroup.procs"))
		if err == nil {
			var out []int
			for _, f := range strings.Fields(string(b)) {
				if p, err := strconv.Atoi(f); err == nil {
					out = append(out, p)
				}
			}
			return out
		}
	}
	return nsPIDs(h.lab.Balancer.NS)
}

// splitSamples parses perf script output (a header line per sample, then
// one "ip sym+off (dso)" line per frame, leaf first, then a blank line).
func splitSamples(out []byte) *Split {
	s := &Split{Shares: map[string]float64{}}
	counts := map[string]int{}
	leaves := map[string]int{}
	var stack []string
	var leafUser bool
	flush := func() {
		if len(stack) == 0 {
			return
		}
		s.Samples++
		counts[classify(stack, leafUser)]++
		leaves[stack[0]]++
		stack = stack[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			flush() // a new sample's header
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		sym := f[1]
		if i := strings.LastIndex(sym, "+0x"); i > 0 {
			sym = sym[:i]
		}
		if len(stack) == 0 {
			leafUser = !strings.Contains(line, "[kernel.kallsyms]")
		}
		stack = append(stack, sym)
	}
	flush()
	if s.Samples == 0 {
		return s
	}
	for k, v := range counts {
		s.Shares[k] = float64(v) / float64(s.Samples)
	}
	type kv struct {
		k string
		v int
	}
	var top []kv
	for k, v := range leaves {
		top = append(top, kv{k, v})
	}
	sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v || top[i].v == top[j].v && top[i].k < top[j].k })
	for _, t := range top[:min(10, len(top))] {
		s.Top = append(s.Top, fmt.Sprintf("%s %.1f%%", t.k, 100*float64(t.v)/float64(s.Samples)))
	}
	return s
}

// Kernel functions that put a sample in a category (the system call
// wrappers themselves are inlined into do_syscall_64 and rarely show).
var (
	txCalls = []string{"__sys_sendto", "__sys_sendmsg", "___sys_sendmsg", "__sys_sendmmsg", "ksys_write", "vfs_write", "do_writev",
		"xsk_sendmsg", "udp_sendmsg", "sock_write_iter"}
	rxCalls = []string{"__sys_recvfrom", "___sys_recvmsg", "__sys_recvmsg", "do_recvmmsg", "__sys_recvmmsg", "ksys_read", "vfs_read",
		"xsk_recvmsg", "udp_recvmsg", "sock_read_iter"}
	waits = []string{"do_sys_poll", "__x64_sys_ppoll", "do_epoll_wait", "ep_poll", "do_futex", "futex_wait", "__futex_wait",
		"hrtimer_nanosleep", "do_nanosleep", "common_nsleep", "do_sched_yield", "core_sys_select", "do_select"}
	scheds   = []string{"__schedule", "finish_task_switch", "finish_task_switch.isra.0", "schedule_idle"}
	softirqs = []string{"handle_softirqs", "__do_softirq", "do_softirq", "do_softirq.part.0", "net_rx_action"}
	irqs     = []string{"asm_sysvec_apic_timer_interrupt", "asm_sysvec_call_function_single", "asm_sysvec_reschedule_ipi",
		"asm_common_interrupt", "asm_sysvec_call_function", "irq_exit_rcu", "sysvec_apic_timer_interrupt"}
)

// classify puts one sample (its stack, leaf first) in a category.
func classify(stack []string, leafUser bool) string {
	if leafUser {
		leaf := stack[0]
		if strings.HasPrefix(leaf, "runtime.") || strings.HasPrefix(leaf, "internal/runtime") || strings.HasPrefix(leaf, "runtime/") {
			return "go runtime"
		}
		return "user"
	}
	has := func(names []string) int {
		for i, f := range stack {
			for _, n := range names {
				if f == n {
					return i
				}
			}
		}
		return -1
	}
	if has(scheds) >= 0 {
		return "scheduling"
	}
	if i := has(txCalls); i >= 0 {
		if j := has(softirqs); j >= 0 && j < i {
			return "tx inline delivery"
		}
		return "tx"
	}
	if has(rxCalls) >= 0 {
		return "rx"
	}
	if has(waits) >= 0 {
		return "waiting"
	}
	if has(irqs) >= 0 || has(softirqs) >= 0 {
		return "interrupts"
	}
	return "other kernel"
}

func (s *Split) summary() string {
	var f []string
	for _, c := range SplitCategories {
		if v := s.Shares[c]; v > 0 {
			f = append(f, fmt.Sprintf("%s %.0f%%", c, 100*v))
		}
	}
	return strings.Join(f, ", ")
}

// splitTable renders the candidates' splits, or "" when there are none.
func (r *Report) splitTable() string {
	var b strings.Builder
	any := false
	for _, c := range r.Candidates {
		any = any || c.Split != nil
	}
	if !any {
		return ""
	}
	b.WriteString("Where the balancer's CPU time goes (perf record -e cpu-clock -g of its processes during one more drop-point run; % of samples):\n\n| candidate | pkt/s | samples |")
	for _, c := range SplitCategories {
		b.WriteString(" " + c + " |")
	}
	b.WriteString(" top leaf functions |\n|---|---|---|" + strings.Repeat("---|", len(SplitCategories)) + "---|\n")
	for _, c := range r.Candidates {
		if c.Split == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %d |", c.Name, kpps(c.Split.PPS), c.Split.Samples)
		for _, k := range SplitCategories {
			fmt.Fprintf(&b, " %.1f |", 100*c.Split.Shares[k])
		}
		fmt.Fprintf(&b, " %s |\n", strings.Join(c.Split.Top[:min(5, len(c.Split.Top))], ", "))
	}
	return b.String()
}
