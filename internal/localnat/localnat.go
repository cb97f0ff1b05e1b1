// Package localnat keeps the kernel NAT rules that let a Local real server
// (an address of the director, IPVS's LOCALNODE) listen on another port
// than its service's.
//
// xvs hands a Local real server's packets to the host's own stack through
// a raw socket, unchanged: to the virtual address and port. The kernel's
// IPVS rewrites the port on the way in and, in its LOCAL_OUT hook
// (ip_vs_local_reply4), translates the local server's replies back to the
// virtual port. xvs never sees those replies (they leave through the
// kernel), so it asks the kernel's own NAT to do both: every such packet is
// sent with the socket mark [Mark] of the real server's port, and one rule
// per service and port in xvs's nftables table (a nat chain on the output
// hook) DNATs the packets that carry the mark to that port. The kernel's
// connection tracking then translates the server's replies back to the
// virtual port, as it does for any DNAT. Packets without the mark — the
// director's own traffic to the virtual address — are left alone.
//
// Connection tracking keys an entry by the client's address and port, the
// virtual address and port, and keeps the first packet's translation while
// it lives; a persistence engine moves one client address and port between
// real servers (--pe sip: one per Call-ID). So that two Local real servers
// of one service on different ports each get theirs, a rule in a raw-
// priority chain puts the marked packets in the conntrack zone of their
// port, for the original direction only ("ct original zone set"): the
// replies, which differ by their port, are found in the default zone.
//
// The rules are derived from the configuration ([Rules]) and the whole
// table is replaced in one transaction ([Table.Apply]) on every commit,
// removed when the daemon stops and at the next start if a daemon died
// without removing it (the marks it matches are only ever set by xvs, so a
// stale table changes no other traffic meanwhile).
//
// The table is written by the nft command (Debian's nftables package, one
// run per change, which is one transaction). The google/nftables library
// cannot express the original-direction zone: its conntrack expression
// sends no direction for the zone key, and its expressions cannot be
// extended outside it.
package localnat

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

const (
	// MarkBase marks (SO_MARK) the packets xvs hands to the host's stack
	// for a Local real server on another port: MarkBase | the port. Its
	// high half ("xv") is what sets xvs's marks apart from other users of
	// the packet mark (policy routing, firewalls), which see it only on
	// these packets.
	MarkBase uint32 = 0x78760000
	// nftTimeout bounds one run of nft: it takes milliseconds, and a hung
	// one must not hold the daemon's configuration for long.
	nftTimeout = 10 * time.Second
)

// Mark is the packet mark that asks xvs's rules to deliver a packet to port
// (a Local real server's port).
func Mark(port uint16) uint32 { return MarkBase | uint32(port) }

// Rule delivers a service's packets marked for Port to Port: the protocol
// Proto, destination VIP (the virtual address and port, which the packet
// keeps), translated to VIP.Addr():Port.
type Rule struct {
	Proto ipvs.Protocol
	VIP   netip.AddrPort
	Port  uint16
}

// match is the rule's match in nft's syntax.
func (r Rule) match() string {
	family := "ip"
	if r.VIP.Addr().Is6() {
		family = "ip6"
	}
	return fmt.Sprintf("meta mark %#x %s daddr %v %s dport %d", Mark(r.Port), family, r.VIP.Addr(), strings.ToLower(r.Proto.String()), r.VIP.Port())
}

// String is the rule's translation in nft's syntax.
func (r Rule) String() string {
	family := "ip"
	if r.VIP.Addr().Is6() {
		family = "ip6"
	}
	return fmt.Sprintf("%s dnat %s to %v", r.match(), family, netip.AddrPortFrom(r.VIP.Addr(), r.Port))
}

// Rules are the rules a snapshot needs: one for each service and port of a
// Local real server whose port differs from the service's (sorted, without
// duplicates; none for a port-0 service or a real server without a port,
// which keep the packet's port). The packet keeps its destination address:
// a Local real server is the director, whatever local address names it
// (127.0.0.1 cannot answer a client elsewhere: the kernel will not route
// from a loopback source, and its IPVS refuses to DNAT the world to it).
func Rules(s *ipvs.Snapshot) []Rule {
	var out []Rule
	if s == nil {
		return nil
	}
	for _, svc := range s.Services() {
		for _, d := range svc.Dests {
			port := d.Addr.Port()
			if !d.Local || svc.Key.Port == 0 || port == 0 || port == svc.Key.Port {
				continue
			}
			out = append(out, Rule{svc.Key.Protocol, netip.AddrPortFrom(svc.Key.Addr, svc.Key.Port), port})
		}
	}
	slices.SortFunc(out, func(a, b Rule) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.VIP.Compare(b.VIP), cmp.Compare(a.Port, b.Port))
	})
	return slices.Compact(out)
}

// Table is xvs's nftables table (family inet) in the current network
// namespace. One daemon owns it (its name says whose). A Table does
// nothing to the kernel until asked: a daemon without Local real servers
// on another port never creates the table.
type Table struct {
	name    string
	nft     []string // the command: nft, or a test's wrapper
	applied []Rule
	present bool
}

// New returns the table name, not created yet.
func New(name string) *Table { return &Table{name: name, nft: []string{"nft"}} }

// Name is the table's name.
func (t *Table) Name() string { return t.name }

// RemoveStale removes a table of the name that a daemon which died left
// behind (nothing when there is none, or no nftables).
func (t *Table) RemoveStale() error {
	out, err := t.run("", "list", "tables", "inet")
	if err != nil || !slices.Contains(strings.Split(out, "\n"), "table inet "+t.name) {
		return nil // none (or nftables cannot be read: nothing can be removed either)
	}
	_, err = t.run("delete table inet "+t.name+"\n", "-f", "-")
	return err
}

// Check reports whether the kernel can hold the table's rules (nf_tables
// with its nat chain type, the nft command, and the permission to change
// them): the kernel checks the table's replacement without applying it
// (nft --check). The error says why not.
func (t *Table) Check() error {
	_, err := t.run(t.script(t.applied), "--check", "-f", "-")
	return err
}

// Apply makes rules the table's rules, atomically: the table is replaced
// as a whole in one transaction, or removed when rules is empty. On error
// the table stays as it was.
func (t *Table) Apply(rules []Rule) error {
	if slices.Equal(rules, t.applied) && t.present == (len(rules) > 0) {
		return nil
	}
	script := t.script(rules)
	if len(rules) == 0 {
		script = fmt.Sprintf("table inet %s\ndelete table inet %s\n", t.name, t.name)
	}
	if _, err := t.run(script, "-f", "-"); err != nil {
		return err
	}
	t.applied = slices.Clone(rules)
	t.present = len(rules) > 0
	return nil
}

// Close removes the table.
func (t *Table) Close() error {
	if t == nil {
		return nil
	}
	return t.Apply(nil)
}

// script is the nft script that replaces the table by one holding rules
// (creating it first, so that the deletion finds one).
func (t *Table) script(rules []Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", t.name, t.name, t.name)
	b.WriteString("\tchain zone {\n\t\ttype filter hook output priority raw; policy accept;\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "\t\t%s ct original zone set %d\n", r.match(), r.Port)
	}
	// -100: dstnat, which nft 1.0.6 names only on the prerouting hook.
	b.WriteString("\t}\n\tchain local {\n\t\ttype nat hook output priority -100; policy accept;\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "\t\t%s\n", r)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// run runs nft with args and stdin, and returns its output.
func (t *Table) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), nftTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.nft[0], append(slices.Clone(t.nft[1:]), args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("nft %s (table inet %s): %w", strings.Join(args, " "), t.name, err)
		if msg := strings.TrimSpace(string(out)); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return "", err
	}
	return string(out), nil
}
