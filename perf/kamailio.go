package perf

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// KamailioOptions tune the Kamailio candidate. The zero value is the
// configuration the benchmark reports (see docs/performance.md, "Kamailio").
type KamailioOptions struct {
	// Children is Kamailio's children: UDP worker processes per listening
	// socket (0: one per CPU).
	Children int
	// LANSocket also listens on the balancer's own address and sends from
	// it (force_send_socket), as the lab first did: twice the workers, half
	// of them idle.
	LANSocket bool
	// ShmMB and PkgMB size shared and per-process memory (0: Kamailio's
	// defaults, 64 and 8).
	ShmMB, PkgMB int
	// Memory is the memory manager for both (-x, -X): "tlsf", "fm" or
	// "qm" (Kamailio's own default); "" is DefaultKamailioMemory.
	Memory string
	// Debug is the log level (0: errors only; 3: debug).
	Debug int
	// Globals are more global parameter lines ("mem_join=1").
	Globals []string
}

// kamailioConfig returns kamailio.cfg for the lab: the dispatcher module
// hashing over the Call-ID (algorithm 0) and forwarding statelessly, the
// VIP a local address of the balancer namespace.
func kamailioConfig(o KamailioOptions, vip, lan netip.Addr, modules, list string) string {
	children := o.Children
	if children == 0 {
		children = runtime.NumCPU()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!KAMAILIO\ndebug=%d\nlog_stderror=yes\nfork=yes\nchildren=%d\ndns=no\nrev_dns=no\nauto_aliases=no\n", o.Debug, children)
	for _, g := range o.Globals {
		b.WriteString(g + "\n")
	}
	fmt.Fprintf(&b, "listen=udp:%v:%d\n", vip, SIPPort)
	if o.LANSocket {
		fmt.Fprintf(&b, "listen=udp:%v:%d\n", lan, SIPPort)
	}
	fmt.Fprintf(&b, "mpath=%q\nloadmodule \"sl.so\"\nloadmodule \"dispatcher.so\"\nmodparam(\"dispatcher\", \"list_file\", %q)\n", modules, list)
	b.WriteString("request_route {\n\tif (!ds_select_dst(\"1\", \"0\")) { drop; }\n")
	if o.LANSocket {
		fmt.Fprintf(&b, "\tforce_send_socket(udp:%v:%d);\n", lan, SIPPort)
	}
	b.WriteString("\tforward();\n\texit;\n}\n")
	return b.String()
}

// DefaultKamailioMemory is the memory manager the benchmark runs Kamailio
// with: TLSF. Kamailio's own default, qm, costs Debian's build
// (DBG_SR_MEMORY: every allocation records its file, function and line)
// 25–29 µs of user time per forwarded INVITE on the lab's CPU against 3–5
// with tlsf — 31–36 against 9–10 µs per datagram in all, measured in
// alternating runs (docs/performance.md, "Kamailio"): the allocator, not
// SIP, would be what the comparison measured.
const DefaultKamailioMemory = "tlsf"

// kamailioArgs are the command-line arguments for cfg.
func kamailioArgs(o KamailioOptions, cfg, dir string) []string {
	if o.Memory == "" {
		o.Memory = DefaultKamailioMemory
	}
	args := []string{"-DD", "-E", "-f", cfg, "-P", filepath.Join(dir, "kamailio.pid"), "-w", dir}
	if o.ShmMB > 0 {
		args = append(args, "-m", fmt.Sprint(o.ShmMB))
	}
	if o.PkgMB > 0 {
		args = append(args, "-M", fmt.Sprint(o.PkgMB))
	}
	if o.Memory != "" {
		args = append(args, "-x", o.Memory, "-X", o.Memory)
	}
	return args
}

// startKamailio runs Kamailio in the balancer namespace.
func (c Candidate) startKamailio(ctx context.Context, e env) (*running, error) {
	l := e.lab
	ns := l.Balancer.NS
	vip := netip.PrefixFrom(l.VIP4, 32).String()
	if out, err := l.Output(ns, "ip", "addr", "replace", vip, "dev", "lo"); err != nil {
		return nil, fmt.Errorf("perf: VIP on the balancer: %v %s", err, out)
	}
	var list strings.Builder
	for _, r := range l.Reals {
		fmt.Fprintf(&list, "1 sip:%v\n", netip.AddrPortFrom(r.Addr4, SIPPort))
	}
	dl := filepath.Join(e.dir, "dispatcher.list")
	cfgPath := filepath.Join(e.dir, "kamailio.cfg")
	cfg := kamailioConfig(e.kam, l.VIP4, l.Balancer.Addr4, kamailioModules(e.kamailio), dl)
	if err := os.WriteFile(dl, []byte(list.String()), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	r, err := c.startProcess(ctx, e, "", e.kamailio, kamailioArgs(e.kam, cfgPath, e.dir), nil)
	if err != nil {
		l.Output(ns, "ip", "addr", "del", vip, "dev", "lo")
		return nil, err
	}
	inner := r.stop
	r.stop = func() error {
		err := inner()
		l.Output(ns, "ip", "addr", "del", vip, "dev", "lo")
		return err
	}
	time.Sleep(time.Second) // children forked and bound
	return r, nil
}

// kamailioModules finds Kamailio's module directory.
func kamailioModules(bin string) string {
	for _, d := range []string{"/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules", "/usr/local/lib/kamailio/modules"} {
		if _, err := os.Stat(filepath.Join(d, "dispatcher.so")); err == nil {
			return d
		}
	}
	return filepath.Join(filepath.Dir(filepath.Dir(bin)), "lib", "kamailio", "modules")
}

// findKamailio returns the kamailio binary or "".
func findKamailio() string {
	p, err := exec.LookPath("kamailio")
	if err != nil {
		return ""
	}
	return p
}
