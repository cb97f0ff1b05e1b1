package ipvsadm

import "github.com/xvs-lb/xvs/internal/ipvs"

// serviceEntry is one line of the built-in port-name table.
type serviceEntry struct {
	name    string
	aliases []string
	port    uint16
	tcp     bool
	udp     bool
}

// services is the built-in port-name table used instead of /etc/services,
// so that xvs behaves the same on every host. It copies the Debian netbase
// entries (name, aliases, protocols) that load-balanced services use.
var services = []serviceEntry{
	{"ftp", nil, 21, true, false},
	{"ssh", nil, 22, true, false},
	{"smtp", []string{"mail"}, 25, true, false},
	{"domain", nil, 53, true, true},
	{"http", []string{"www"}, 80, true, false},
	{"ntp", nil, 123, false, true},
	{"snmp", nil, 161, true, true},
	{"ldap", nil, 389, true, true},
	{"https", nil, 443, true, true},
	{"syslog", nil, 514, false, true},
	{"submission", nil, 587, true, false},
	{"ldaps", nil, 636, true, true},
	{"imaps", nil, 993, true, false},
	{"pop3s", nil, 995, true, false},
	{"radius", nil, 1812, true, true},
	{"mysql", nil, 3306, true, false},
	{"sip", nil, 5060, true, true},
	{"sip-tls", nil, 5061, true, true},
	{"postgresql", []string{"postgres"}, 5432, true, false},
	{"http-alt", []string{"webcache"}, 8080, true, false},
}

func (e serviceEntry) has(p ipvs.Protocol) bool {
	return p == ipvs.TCP && e.tcp || p == ipvs.UDP && e.udp
}

// ServicePort returns the port of a service name (or alias) for the
// protocol from the built-in table, like getservbyname: ("sip", UDP) is
// 5060, ("http", UDP) is unknown as in netbase.
func ServicePort(p ipvs.Protocol, name string) (uint16, bool) {
	for _, e := range services {
		if !e.has(p) {
			continue
		}
		if e.name == name {
			return e.port, true
		}
		for _, a := range e.aliases {
			if a == name {
				return e.port, true
			}
		}
	}
	return 0, false
}

// ServiceName returns the built-in name of a port for the protocol, like
// getservbyport: (UDP, 5060) is "sip".
func ServiceName(p ipvs.Protocol, port uint16) (string, bool) {
	for _, e := range services {
		if e.port == port && e.has(p) {
			return e.name, true
		}
	}
	return "", false
}
