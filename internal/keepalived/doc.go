// Package keepalived reads keepalived.conf as a configuration source for
// xvs: an IPVS director's virtual_server blocks run on xvs unchanged while
// keepalived keeps doing VRRP (keepalived --vrrp).
//
// Load reads a file as keepalived 2.2 does and returns what xvs makes of
// it:
//
//   - the reader (read.go) is keepalived's read_line: '#' and '!' comments
//     outside double quotes, double-quoted words, every brace a line of
//     its own, include and its variants (globs and csh braces, relative to
//     the including file, textual), "@id"/"@^id" conditional lines against
//     Options.ConfigID, $NAME=value parameters; multi-line definitions,
//     ~SEQ, ~LST and ${_RANDOM} are refused;
//   - tree.go builds keyword nodes with their blocks and positions;
//   - interp.go and vs.go interpret the LVS part with keepalived's
//     semantics and defaults (validate_check_config): virtual servers and
//     groups, real servers, checkers, lvs_timeouts, lvs_sync_daemon,
//     script_user; VRRP, BFD and the rest of global_defs are keepalived's
//     and skipped without a word;
//   - map.go maps the result to xvsadm commands (Rule: argv, the parsed
//     ipvsadm.Command, and the file:line it comes from), health checkers
//     to xvs's checks per real server.
//
// Loaded.Build applies the rules to a model; Loaded.Diff computes the
// commands a reload applies to a running configuration, as keepalived's
// reload does (services edited in place, templates kept). Every refusal is
// an *Error listing Diags with their file:line; unsupported features carry
// the keyword's name (Diag.Feature) and wrap ErrUnsupported, malformed
// input wraps ErrInvalid. Warnings say what was defaulted, approximated or
// ignored. docs/keepalived.md is the user's guide and keyword table.
package keepalived
