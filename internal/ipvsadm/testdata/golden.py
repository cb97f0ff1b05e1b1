#!/usr/bin/env python3
# Derives the *.golden files from ipvsadm 1.31's printf format strings
# (ipvsadm.c print_title, print_service_entry, print_largenum, list_conn,
# print_conn), independently of the Go code. Python's % operator follows
# C printf for these conversions. The configuration mirrors fixture() in
# format_test.go. Run: python3 golden.py
V4, V6 = 2, 10
svcs = [  # (proto, host, port, v6, sched, flags, persist, mask, pe, ops, stats, rates, dests)
    ("TCP", "10.4.3.192", 80, False, "wlc", "", None, None, "", False,
     (1000, 2000, 1500, 100000000, 999999999), (5, 6, 7, 800, 900),
     [("192.168.1.10", 80, "Route", 3, 12, 40, 0, 100, 50, None, (700, 1400, 1000, 70000, 60000), (3, 4, 5, 600, 700)),
      ("10.1.0.5", 80, "Tunnel", 2, 1, 2, 0, 0, 0, "gue:6080:+c", (300, 600, 500, 30000, 40000), (2, 2, 2, 200, 200))]),
    ("UDP", "10.4.3.192", 5060, False, "rr", "", 60, "0.0.0.0", "sip", True,
     (12, 123456789, 0, 98765432101, 123456789012345), (1, 2, 0, 1000, 0),
     [("192.168.1.10", 5060, "Masq", 1, 0, 5, 4, 0, 0, None, (7, 7, 0, 3500, 0), (1, 1, 0, 500, 0)),
      ("192.168.1.11", 5060, "Masq", 1, 0, 3, 2, 0, 0, None, (5, 5, 0, 2500, 0), (0, 1, 0, 500, 0))]),
    ("UDP", "10.4.3.193", 5060, False, "wlc", "", None, None, "sip", False,
     (0, 0, 0, 0, 0), (0, 0, 0, 0, 0), []),
    ("UDP", "2001:db8::53", 53, True, "sh", "sh-fallback,sh-port", None, None, "", False,
     (0, 0, 0, 0, 0), (0, 0, 0, 0, 0),
     [("2001:db8::10", 53, "Masq", 0, 0, 0, 0, 0, 0, None, (0, 0, 0, 0, 0), (0, 0, 0, 0, 0))]),
]
names = {"10.4.3.192": "lb.example.com"}
ports = {("TCP", 80): "http", ("UDP", 5060): "sip", ("UDP", 53): "domain", ("TCP", 53): "domain"}

import functools, ipaddress
def signed_cmp(d1, d2):
    # libipvs ipvs_cmp_dests: signed 32-bit difference of host-order words.
    def words(h):
        b = ipaddress.ip_address(h).packed
        return [int.from_bytes(b[i:i + 4], "big") for i in range(0, len(b), 4)]
    w1, w2 = words(d1[0]), words(d2[0])
    for a, b in zip(w1, w2):
        r = (a - b) & 0xffffffff
        r = r - (1 << 32) if r >= 1 << 31 else r
        if r: return r
    return d1[1] - d2[1]

def ap(host, port, v6, proto, numeric):
    if not numeric:
        host = names.get(host, host)
        port = ports.get((proto, port), port)
    return ("[%s]:%s" if v6 else "%s:%s") % (host, port)

def largenum(i, exact):
    if exact:
        s = "%d" % i
        return "%*d" % (9 if len(s) <= 8 else len(s) + 1, i)
    if i < 100000000: return "%9d" % i
    if i < 1000000000: return "%8dK" % (i // 1000)
    if i < 100000000000: return "%8dM" % (i // 1000000)
    if i < 100000000000000: return "%8dG" % (i // 1000000000)
    return "%8dT" % (i // 1000000000000)

def title(fmt):
    if "stats" in fmt: return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    if "rate" in fmt: return "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
    if "thr" in fmt: return "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
    if "pc" in fmt: return "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n" % ("Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn")
    if "tun" in fmt: return "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
    return "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"

def listing(fmt, numeric=True):
    exact = "exact" in fmt
    out = "IP Virtual Server version 1.2.1 (size=4096)\n" + title(fmt)
    for (proto, host, port, v6, sched, flags, persist, mask, pe, ops, st, rt, dests) in svcs:
        name = "%-4s %s" % (proto, ap(host, port, v6, proto, numeric))
        if not v6: name = name[:33]
        if "stats" in fmt:
            out += "%-33s" % name + "".join(largenum(x, exact) for x in st)
        elif "rate" in fmt:
            out += "%-33s" % name + "".join(largenum(x, exact) for x in rt)
        else:
            out += "%s %s" % (name, sched)
            if flags: out += " (%s)" % flags
            if persist is not None:
                out += " persistent %u" % persist
                if mask: out += " mask %s" % mask
                if pe: out += " pe %s" % pe
            if ops: out += " ops"
        out += "\n"
        for (dh, dp, fwd, w, act, inact, pers, ut, lt, ti, dst, drt) in sorted(dests, key=functools.cmp_to_key(signed_cmp)):
            dname = ap(dh, dp, ":" in dh, proto, numeric)
            if ":" not in dh: dname = dname[:28]
            if "stats" in fmt:
                out += "  -> %-28s" % dname + "".join(largenum(x, exact) for x in dst) + "\n"
            elif "rate" in fmt:
                out += "  -> %-28s %8u %8u %8u" % (dname, drt[0], drt[1], drt[2]) + largenum(drt[3], exact) + largenum(drt[4], exact) + "\n"
            elif "thr" in fmt:
                out += "  -> %-28s %-10u %-10u %-10u %-10u\n" % (dname, ut, lt, act, inact)
            elif "pc" in fmt:
                out += "  -> %-28s %-9u %-11u %-10u %-10u\n" % (dname, w, pers, act, inact)
            elif "tun" in fmt:
                out += "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n" % (dname, fwd, ti or "n/a", w, act, inact)
            else:
                out += "  -> %-28s %-7s %-6d %-10u %-10u\n" % (dname, fwd, w, act, inact)
    return out

conns = [  # proto, client, virtual, dest, state, expires, pe name, pe data (already escaped)
    ("UDP", "10.4.3.0:0", "10.4.3.192:5060", "192.168.1.10:5060", "NONE", 38, "sip", "a84b4c76e66710@pc33.example.com"),
    ("UDP", "10.4.3.7:5062", "10.4.3.192:5060", "192.168.1.10:5060", "UDP", 299, "", ""),
    ("UDP", "10.4.3.0:0", "10.4.3.192:5060", "192.168.1.11:5060", "ASSURED", 3599, "sip", "evil\\x1b[2J\\x20id\\x5c"),
    ("TCP", "[2001:db8::7]:40000", "[2001:db8::53]:53", "[2001:db8::10]:53", "ESTABLISHED", 900, "", ""),
]

def conn_list(pc):
    out = "IPVS connection entries\n"
    if pc: out += "pro expire %-11s %-18s %-18s %-18s %-16s %s\n" % ("state", "source", "virtual", "destination", "pe name", "pe_data")
    else: out += "pro expire %-11s %-18s %-18s %s\n" % ("state", "source", "virtual", "destination")
    for (p, c, v, d, s, e, pn, pd) in conns:
        es = "%02d:%02d" % (e // 60, e % 60)
        if pc and pd:
            out += "%-3s %-6s %-11s %-18s %-18s %-16s %-18s %s\n" % (p, es, s, c, v, d, pn, pd)
        else:
            out += "%-3s %-6s %-11s %-18s %-18s %s\n" % (p, es, s, c, v, d)
    return out

files = {
    "list_numeric": listing(""), "list_names": listing("", numeric=False),
    "list_stats": listing("stats"), "list_stats_exact": listing("stats exact"),
    "list_rate": listing("rate"), "list_thresholds": listing("thr"),
    "list_persistent_conn": listing("pc"), "list_tun_info": listing("tun"),
    "conns": conn_list(False), "conns_persistent": conn_list(True),
}
for k, v in files.items():
    open(k + ".golden", "w").write(v)
