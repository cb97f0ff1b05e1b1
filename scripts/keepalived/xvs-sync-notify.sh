#!/bin/sh
# xvs-sync-notify.sh — makes xvs's connection synchronisation daemon follow a
# keepalived VRRP instance, as keepalived makes IPVS's follow it with
# lvs_sync_daemon: the master daemon while the instance is MASTER, the backup
# daemon otherwise (keepalived's vrrp.c: ipvs_syncd_master on becoming master,
# ipvs_syncd_backup on leaving it; both stopped when keepalived stops).
#
# keepalived programs IPVS through netlink, which xvs cannot receive, so the
# instance's notify script does it with xvsadm. As keepalived's generic notify
# script (keepalived appends TYPE NAME STATE PRIORITY):
#
#   vrrp_instance VI_1 {
#       ...
#       notify "/usr/local/sbin/xvs-sync-notify.sh --mcast-interface eth1 --syncid 51"
#   }
#
# or one state per script:
#
#   notify_master "/usr/local/sbin/xvs-sync-notify.sh --mcast-interface eth1 --syncid 51 MASTER"
#   notify_backup "/usr/local/sbin/xvs-sync-notify.sh --mcast-interface eth1 --syncid 51 BACKUP"
#   notify_fault  "/usr/local/sbin/xvs-sync-notify.sh --mcast-interface eth1 --syncid 51 FAULT"
#   notify_stop   "/usr/local/sbin/xvs-sync-notify.sh --mcast-interface eth1 --syncid 51 STOP"
#
# The options are xvsadm --start-daemon's (ipvsadm's): --mcast-interface IF,
# --syncid N, --sync-maxlen N, --mcast-group ADDR, --mcast-port N,
# --mcast-ttl N; `xvs rules --from-keepalived` prints the ones lvs_sync_daemon
# asks for. States:
#
#   MASTER          xvsadm --stop-daemon backup; xvsadm --start-daemon master OPTIONS
#   BACKUP, FAULT   xvsadm --stop-daemon master; xvsadm --start-daemon backup OPTIONS
#   STOP, DELETED   xvsadm --stop-daemon master; xvsadm --stop-daemon backup
#
# With --both, the two daemons run in every state but STOP and DELETED, as
# keepalived runs IPVS's when lvs_sync_daemon names no instance (and as xvs
# run --start-daemon master --start-daemon backup does): a director that
# comes back learns every live call while it is BACKUP, before it takes the
# traffic back (see docs/ha.md):
#
#   MASTER, BACKUP, FAULT  xvsadm --start-daemon master OPTIONS; xvsadm --start-daemon backup OPTIONS
#   STOP, DELETED          xvsadm --stop-daemon master; xvsadm --stop-daemon backup
#
# A --stop-daemon of a daemon that is not running fails harmlessly and is
# ignored, as is a --start-daemon of one that runs ("Daemon has already
# run"); any other failed --start-daemon makes the script exit 1. Environment:
# XVSADM (default: xvsadm on PATH), XVS_CONTROL (xvs's control socket, read by
# xvsadm). Messages go to stderr and, when logger(1) exists, to syslog.
set -u

XVSADM=${XVSADM:-xvsadm}
prog=xvs-sync-notify

log() {
	echo "$prog: $*" >&2
	command -v logger >/dev/null 2>&1 && logger -t "$prog" -- "$*"
	return 0
}

usage() {
	log "$1"
	echo "usage: $prog [--both] [--mcast-interface IF] [--syncid N] [--sync-maxlen N] [--mcast-group ADDR] [--mcast-port N] [--mcast-ttl N] {MASTER|BACKUP|FAULT|STOP | INSTANCE NAME STATE [PRIORITY]}" >&2
	exit 2
}

opts=
state=
both=
while [ $# -gt 0 ]; do
	case $1 in
	--both)
		both=1
		shift
		;;
	--mcast-interface|--syncid|--sync-maxlen|--mcast-group|--mcast-port|--mcast-ttl)
		[ $# -ge 2 ] || usage "$1 needs a value"
		case $2 in
		''|*[!A-Za-z0-9.:_-]*) usage "bad value for $1: '$2'" ;;
		esac
		opts="$opts $1 $2"
		shift 2
		;;
	--*)
		usage "unknown option $1"
		;;
	INSTANCE|GROUP)
		# keepalived's generic notify: TYPE NAME STATE [PRIORITY]
		[ $# -ge 3 ] || usage "notify arguments: $*"
		state=$3
		shift $#
		;;
	*)
		[ -z "$state" ] || usage "unexpected argument $1"
		state=$1
		shift
		;;
	esac
done
[ -n "$state" ] || usage "no state given"

stop() {
	# The daemon may not be running: that is not an error here.
	$XVSADM --stop-daemon "$1" >/dev/null 2>&1 || true
}

start() {
	# shellcheck disable=SC2086 # opts are checked words
	if ! out=$($XVSADM --start-daemon "$1" $opts 2>&1); then
		case $out in
		*"Daemon has already run"*)
			return 0
			;;
		esac
		log "xvsadm --start-daemon $1$opts failed: $out"
		exit 1
	fi
	log "sync daemon $1 started ($state)"
}

case $both$(echo "$state" | tr '[:lower:]' '[:upper:]') in
1MASTER|1BACKUP|1FAULT)
	start master
	start backup
	;;
1STOP|1DELETED)
	stop master
	stop backup
	log "sync daemons stopped ($state)"
	;;
MASTER)
	stop backup
	start master
	;;
BACKUP|FAULT)
	stop master
	start backup
	;;
STOP|DELETED)
	stop master
	stop backup
	log "sync daemons stopped ($state)"
	;;
*)
	usage "unknown state $state"
	;;
esac
exit 0
