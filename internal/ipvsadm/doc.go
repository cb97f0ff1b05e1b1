// Package ipvsadm is the ipvsadm command-line grammar, the rules-file
// format of ipvsadm -S / -R, and ipvsadm's output formats, as pure
// functions over plain data. Parse turns an argv into a Command, ParseRules
// turns a rules file into Commands, and the Append*/Write* functions print
// ServiceView, DestView and ConnView values the way ipvsadm prints the
// kernel's tables. As ipvsadm builds against the kernel's ip_vs.h, it speaks
// the model's vocabulary and nothing more of xvs: forwarding methods are
// ipvs.Forward, scheduler flags sched.Flags (parsed and printed by package
// sched), and its limits and defaults are the model's where they agree.
//
// # Compatibility with ipvsadm 1.31
//
// Byte-compatible with ipvsadm 1.31 (popt build):
//
//   - the grammar: every command and option, long and short forms, short
//     clusters (-Ln, -Lcn, -Sn, -p60), --opt=value, optional -p value taken
//     only when it does not start with '-', non-option arguments anywhere,
//     "--"; the command must be the first option, as in ipvsadm;
//   - every check and its order: the commands_v_options table, "multiple
//     '%s' options specified", zero port, one-packet scheduling only for
//     UDP, -p 1..2678400 (bare -p = 360), -M dotted mask or IPv6 prefix
//     1..128 (recognised as a prefix only after an IPv6 -t/-u, as in
//     ipvsadm), -w 0..65535, -x/-y 0..INT_MAX, -b flags against the
//     scheduler, tunnel options, --set's three values, list option
//     conflicts; the defaults ipvsadm fills in (wlc, -g, weight 1, mask /32
//     or /128), so that -E and -e replace the whole service or destination;
//     DR and tunnel destination ports forced to the service port;
//   - the number and address syntax of the C library: strtol-style numbers,
//     inet_aton addresses ("10.1" is 10.0.0.1, "010.0.0.1" is octal),
//     ipvsadm's "[1.2.3.4]:80 loses its port" quirk;
//   - error messages (UsageError.Stderr) and exit statuses: 2 for fail(),
//     255 for popt errors ("--foo: unknown option") and for the "Try …"
//     hint when the first option is not a command. A second command is
//     "invalid option `-E'", as in 1.31, whose "multiple commands
//     specified" cannot be reached;
//   - the outputs: -L[n] with --stats, --rate, --thresholds,
//     --persistent-conn, --tun-info, --exact (print_largenum); the banner
//     "IP Virtual Server version 1.2.1 (size=N)"; -L --timeout and
//     --daemon; -Lc[n] [--persistent-conn], including the row format whose
//     destination and "pe name" widths are swapped relative to the header;
//     -S[n], where --pe is saved even for non-persistent services and
//     thresholds are not saved; name truncation at 33/28/59 bytes;
//   - the order of services and destinations: libipvs's comparators,
//     whose signed 32-bit address differences make 1.0.0.1 sort after
//     192.168.0.1, run through glibc's merge sort (see SortServices);
//     --nosort keeps the caller's order.
//
// # Deliberate differences
//
//   - fwmark (-f, -6) and SCTP (--sctp-service) services are rejected with
//     exit status 2 and an error wrapping ErrUnsupported.
//   - Port names come from a built-in table copied from Debian netbase
//     (ServicePort, ServiceName: sip=5060, http=80/tcp, …), not from
//     /etc/services. Host names are resolved only through Parser.LookupHost
//     and Names.Host; by default they are errors on input and addresses are
//     printed numerically even without -n.
//   - Rules files accept '#' comments (a token starting with '#' ends the
//     line) and blank lines; ipvsadm's config_stream_read has no comments.
//     A double-quoted part of a token keeps blanks and '#' (\" and \\
//     escape): -S writes a health check's --script command line that way.
//     ipvsadm's own -S output never contains a quote.
//     Errors name the line: "rules:12: illegal weight specified".
//   - PE data in -Lc --persistent-conn is printed with every byte that is
//     not printable ASCII, the space and the backslash escaped as \xHH, so
//     a hostile Call-ID cannot inject terminal control sequences or fake
//     columns; ipvsadm prints raw bytes (and its sscanf cuts at the first
//     space). Ordinary Call-IDs print identically.
//   - Persistence-engine names are cut at 15 bytes (ipvsadm copies 16 and
//     may leave them unterminated). "-b ," is "invalid scheduler flag"
//     (ipvsadm crashes). flag-3 on an sh or mh service is listed and saved
//     as "flag-3"; ipvsadm prints nothing for it and writes a -S line
//     ending in "-b " that cannot be restored.
//   - The xvs extension --pe-strict (with -A/-E, needs --pe) drops packets
//     the engine cannot key instead of falling back to client-address
//     persistence. -S saves it after --pe so rules round-trip; -L does not
//     show it, keeping ipvsadm's line format.
//   - -h and -v name the program and list only what xvs supports.
package ipvsadm
