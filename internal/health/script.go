package health

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Script checks run a command per probe, as keepalived's MISC_CHECK does:
//
//   - exit status 0: alive; 1: failed; with Dynamic, 2..255 is alive and
//     sets the server's weight to status-2 (0 sets it back to the
//     configured weight); without Dynamic any status but 0 fails;
//   - a script still running at the check's timeout is sent SIGTERM, then
//     SIGKILL after scriptKillGrace, in its own process group (so its
//     children go too), and counts as a failure ("timeout");
//   - it runs as HealthCheck.ScriptUser ("user" or "user:group"; default
//     the daemon's user), with stdin, stdout and stderr on /dev/null, a
//     fixed PATH, and the service and real server in XVS_* variables;
//   - at most Options.MaxScripts run at once.
const (
	// scriptKillGrace is keepalived's: a script that ignores SIGTERM for 2 s
	// is killed.
	scriptKillGrace = 2 * time.Second
	// scriptPath is the PATH scripts run with.
	scriptPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// scriptProbe runs a script check against t.
func (p *Prober) scriptProbe(ctx context.Context, t target) result {
	h := t.check
	r := result{path: PathDirect, dynamic: -1}
	cred, err := p.credential(h.ScriptUser)
	if err != nil {
		r.outcome = "user: " + shortErr(err)
		return r
	}
	env := []string{
		"PATH=" + scriptPath,
		"XVS_SERVICE=" + t.svc.String(),
		"XVS_PROTOCOL=" + t.svc.Protocol.String(),
		"XVS_SERVICE_ADDR=" + t.vip.Addr().String(),
		"XVS_SERVICE_PORT=" + strconv.Itoa(int(t.vip.Port())),
		"XVS_REAL_SERVER=" + t.server.String(),
		"XVS_REAL_SERVER_ADDR=" + t.server.Addr().String(),
		"XVS_REAL_SERVER_PORT=" + strconv.Itoa(int(t.server.Port())),
	}
	status, outcome := runScript(ctx, h.Script, env, cred)
	r.outcome = outcome
	switch {
	case status == 0:
		r.ok = true
	case status >= 2 && status <= 255 && h.Dynamic:
		r.ok, r.dynamic = true, status-2
	}
	return r
}

// runScript runs argv until it exits or ctx ends, and returns its exit
// status (-1 when it did not exit normally) and an outcome for the
// listing ("exit 0", "timeout", "signal 9", "exec: …").
func runScript(ctx context.Context, argv []string, env []string, cred *syscall.Credential) (int, string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return -1, "exec: " + shortErr(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(scriptKillGrace):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// Whatever the script started goes with it.
		syscall.Kill(-pgid, syscall.SIGKILL)
		return -1, outcomeTimeout
	}
	if err == nil {
		return 0, "exit 0"
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return -1, "wait: " + shortErr(err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	switch {
	case ok && ws.Signaled():
		return -1, "signal " + strconv.Itoa(int(ws.Signal()))
	case ok && ws.Exited():
		return ws.ExitStatus(), "exit " + strconv.Itoa(ws.ExitStatus())
	}
	return -1, shortErr(err)
}

// credential resolves "user" or "user:group" (names or ids) to the
// credential a script runs with; "" is the daemon's own (nil).
func (p *Prober) credential(spec string) (*syscall.Credential, error) {
	if spec == "" {
		return nil, nil
	}
	p.credMu.Lock()
	defer p.credMu.Unlock()
	if c, ok := p.creds[spec]; ok && time.Since(c.at) < credCacheTTL {
		return c.cred, c.err
	}
	cred, err := lookupCredential(spec)
	if p.creds == nil {
		p.creds = map[string]cachedCred{}
	}
	p.creds[spec] = cachedCred{cred: cred, err: err, at: time.Now()}
	return cred, err
}

// credCacheTTL is how long a resolved script user is reused: user
// databases change rarely, probes come often.
const credCacheTTL = time.Minute

type cachedCred struct {
	cred *syscall.Credential
	err  error
	at   time.Time
}

type credCache struct {
	credMu sync.Mutex
	creds  map[string]cachedCred
}

func lookupCredential(spec string) (*syscall.Credential, error) {
	name, grp, hasGroup := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, err
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, errors.New("non-numeric uid/gid for " + name)
	}
	if hasGroup {
		g, err := user.LookupGroup(grp)
		if err != nil {
			if g, err = user.LookupGroupId(grp); err != nil {
				return nil, err
			}
		}
		if gid, err = strconv.ParseUint(g.Gid, 10, 32); err != nil {
			return nil, errors.New("non-numeric gid for " + grp)
		}
	}
	if uint32(uid) == uint32(os.Geteuid()) && uint32(gid) == uint32(os.Getegid()) {
		return nil, nil
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}
