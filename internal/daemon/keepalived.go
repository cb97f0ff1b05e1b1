package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/xvs-lb/xvs/internal/control"
	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/internal/ipvsadm"
	"github.com/xvs-lb/xvs/internal/keepalived"
)

// ErrNothingToReload is Reload's error when the daemon was started without
// a configuration file that can be reloaded.
var ErrNothingToReload = errors.New("nothing to reload (xvs run has no --keepalived-conf)")

// kaSource is a keepalived.conf the daemon serves, and the services it
// declared at its last load (the ones a reload may edit or delete).
type kaSource struct {
	path  string
	opts  keepalived.Options
	owned map[ipvs.ServiceKey]bool
}

// loadKeepalived loads the keepalived.conf of o at start, beside the rules
// file already in d.cfg: a service both declare refuses the start.
func (d *Daemon) loadKeepalived(o Options) error {
	ko := keepalived.Options{ConfigID: o.KeepalivedID}
	l, err := keepalived.Load(o.Keepalived, ko)
	if err != nil {
		return fmt.Errorf("keepalived configuration refused:\n%w", err)
	}
	cur := d.cfg.Snapshot()
	for _, r := range l.Rules {
		if r.Cmd.Kind != ipvsadm.AddService {
			continue
		}
		if findKey(cur, r.Cmd.Service) {
			return fmt.Errorf("%v: virtual service %s %s is declared both in %s and in the rules file %s",
				r.Pos, r.Cmd.Service.Protocol, r.Argv[2], o.Keepalived, o.Rules)
		}
	}
	ch, err := l.Diff(cur, nil)
	if err != nil {
		return fmt.Errorf("keepalived configuration refused:\n%w", err)
	}
	if err := d.applyRules(ch.Rules); err != nil {
		return err
	}
	d.ka = &kaSource{path: o.Keepalived, opts: ko, owned: ch.Owned}
	d.logKeepalived(l, ch, "keepalived configuration loaded")
	return nil
}

func findKey(s *ipvs.Snapshot, svc ipvsadm.Service) bool {
	k := ipvs.ServiceKey{Protocol: ipvs.Protocol(svc.Protocol), Addr: svc.Addr, Port: svc.Port}
	for _, x := range s.Services() {
		if x.Key == k {
			return true
		}
	}
	return false
}

// applyRules applies keepalived rules to the live configuration (at
// start, before the workers run), naming a failing rule's file:line.
func (d *Daemon) applyRules(rs []keepalived.Rule) error {
	cmds := make([]ipvsadm.Command, len(rs))
	for i, r := range rs {
		cmds[i] = r.Cmd
	}
	return ruleError(rs, d.applyAllLocked(cmds))
}

// ruleError turns ApplyAll's *control.CommandError into the failing
// rule's file:line.
func ruleError(rs []keepalived.Rule, err error) error {
	var ce *control.CommandError
	if errors.As(err, &ce) && ce.Index < len(rs) {
		r := rs[ce.Index]
		return &keepalived.Error{Diags: []keepalived.Diag{{Pos: r.Pos, Severity: keepalived.Invalid,
			Msg: fmt.Sprintf("%s (as xvsadm %s)", control.KernelMessage(ce.Err), strings.Join(r.Argv, " "))}}}
	}
	return err
}

func (d *Daemon) logKeepalived(l *keepalived.Loaded, ch *keepalived.Change, msg string) {
	for _, w := range l.Warnings {
		d.log.Warn("keepalived.conf", "at", w.Pos.String(), "warning", w.Msg)
	}
	d.log.Info(msg, "file", l.Path, "services", len(ch.Owned), "change", ch.Summary(), "warnings", len(l.Warnings))
}

// Reload re-reads the keepalived.conf the daemon was started with and
// applies the difference atomically, as keepalived's reload does (see
// keepalived.Loaded.Diff): unchanged services and real servers keep their
// counters, scheduler state and templates; changed ones are edited in
// place. A file that does not load, or whose change the model refuses,
// changes nothing: the running configuration keeps serving, and the error
// names the file:line. It returns the file's warnings.
func (d *Daemon) Reload(ctx context.Context) ([]string, error) {
	if d.ka == nil {
		return nil, ErrNothingToReload
	}
	l, err := keepalived.Load(d.ka.path, d.ka.opts)
	if err != nil {
		d.log.Error("keepalived reload refused: the running configuration is kept", "file", d.ka.path, "err", err.Error())
		return nil, err
	}
	var warnings []string
	for _, w := range l.Warnings {
		warnings = append(warnings, w.String())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, err := l.Diff(d.cfg.Snapshot(), d.ka.owned)
	if err == nil && len(ch.Rules) > 0 {
		cmds := make([]ipvsadm.Command, len(ch.Rules))
		for i, r := range ch.Rules {
			cmds[i] = r.Cmd
		}
		err = ruleError(ch.Rules, d.applyAllLocked(cmds))
	}
	if err != nil {
		d.log.Error("keepalived reload refused: the running configuration is kept", "file", d.ka.path, "err", err.Error())
		return warnings, err
	}
	d.ka.owned = maps.Clone(ch.Owned)
	d.logKeepalived(l, ch, "keepalived configuration reloaded")
	return warnings, nil
}

var _ control.Reloader = (*Daemon)(nil)
