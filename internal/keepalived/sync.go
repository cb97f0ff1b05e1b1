package keepalived

import (
	"strconv"
	"strings"
)

// StartArgs are the xvsadm arguments that start the connection
// synchronisation daemon lvs_sync_daemon describes, in state "master" or
// "backup" (what keepalived asks IPVS for).
func (sd *SyncDaemon) StartArgs(state string) []string {
	a := []string{"--start-daemon", state, "--mcast-interface", sd.Iface, "--syncid", strconv.Itoa(int(sd.SyncID))}
	if sd.MaxLen != 0 {
		a = append(a, "--sync-maxlen", strconv.Itoa(int(sd.MaxLen)))
	}
	if sd.Group.IsValid() {
		a = append(a, "--mcast-group", sd.Group.String())
	}
	if sd.Port != 0 {
		a = append(a, "--mcast-port", strconv.Itoa(int(sd.Port)))
	}
	if sd.TTL != 0 {
		a = append(a, "--mcast-ttl", strconv.Itoa(int(sd.TTL)))
	}
	return a
}

// NotifyScript is where the packaged VRRP notify script is documented to
// live (it ships in the repository as scripts/keepalived/xvs-sync-notify.sh).
const NotifyScript = "/usr/local/sbin/xvs-sync-notify.sh"

// Mapping explains how xvs follows lvs_sync_daemon: keepalived programs
// the kernel's IPVS sync daemon itself; with xvs, keepalived's notify
// script drives xvsadm, and lvs_sync_daemon must leave the file keepalived
// reads (keepalived --vrrp would initialise IPVS for it; 2.2.7 crashes when
// the kernel has no IPVS).
func (sd *SyncDaemon) Mapping() string {
	opts := strings.Join(sd.StartArgs("STATE")[2:], " ")
	const remove = "; remove lvs_sync_daemon from the file keepalived reads (keepalived --vrrp would program the kernel's IPVS sync daemon; 2.2.7 crashes without IPVS)"
	if sd.Instance == "" {
		return "lvs_sync_daemon " + sd.Iface + " without a VRRP instance: keepalived runs the master and the backup sync daemon at once; " +
			"with xvs start both with xvs run: `--start-daemon master --start-daemon backup " + strings.Join(sd.StartArgs("x")[2:], " ") +
			"` (see docs/ha.md)" + remove
	}
	return "lvs_sync_daemon " + sd.Iface + " follows VRRP instance " + sd.Instance +
		": keepalived runs the master sync daemon while " + sd.Instance + " is MASTER and the backup one otherwise; " +
		"with xvs add `notify \"" + NotifyScript + " " + opts + "\"` to vrrp_instance " + sd.Instance +
		" (it runs xvsadm --start-daemon master|backup " + opts + " and --stop-daemon on each state change, see docs/keepalived.md)" + remove
}
