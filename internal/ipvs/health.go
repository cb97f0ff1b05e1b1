package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/xvs-lb/xvs/internal/sched"
)

// CheckType is the kind of health check run against a service's real
// servers (xvs extension; IPVS leaves checking to keepalived).
type CheckType uint8

// Check types.
const (
	CheckNone CheckType = iota
	// CheckSIPOptions sends a SIP OPTIONS request (a fresh Call-ID per
	// probe) and expects a response with an accepted status code.
	CheckSIPOptions
	// CheckUDP sends a datagram and counts any reply as alive, an ICMP
	// port unreachable (or silence until the timeout) as a failure.
	CheckUDP
	// CheckTCP opens a TCP connection and closes it.
	CheckTCP
	// CheckScript runs a command (keepalived's MISC_CHECK): exit status 0
	// is alive, anything else (or a timeout, which kills it) is a failure;
	// with Dynamic, 2..255 is alive with weight status-2.
	CheckScript
	// CheckHTTP and CheckHTTPS GET a URL (keepalived's HTTP_GET and
	// SSL_GET) and check the status code and, optionally, the body's MD5.
	CheckHTTP
	CheckHTTPS
)

var checkNames = [...]string{"none", "sip-options", "udp", "tcp", "script", "http", "https"}

// String returns the check's name as xvsadm --check takes it.
func (t CheckType) String() string {
	if int(t) < len(checkNames) {
		return checkNames[t]
	}
	return "check(" + fmt.Sprint(uint8(t)) + ")"
}

// ParseCheckType parses a --check name.
func ParseCheckType(s string) (CheckType, bool) {
	i := slices.Index(checkNames[:], s)
	return CheckType(max(i, 0)), i >= 0
}

// TemplatePolicy says what happens to the persistence templates of a real
// server that fails its health check.
type TemplatePolicy uint8

// Template policies.
const (
	// PolicyExpire (the default) treats the templates of a down server as
	// invalid: the next datagram of such a call is scheduled afresh to a
	// healthy server. A SIP proxy that stopped answering has lost its
	// transactions anyway, and the peers' retransmissions then reach a live
	// one (a stateless proxy, or one sharing dialog state, continues the call).
	PolicyExpire TemplatePolicy = iota
	// PolicyKeep keeps sending the known calls of a down server to it (as
	// IPVS does for a quiesced server without expire_quiescent_template):
	// for checks that can fail while calls still work.
	PolicyKeep
)

// String returns "expire" or "keep", as --on-fail takes it.
func (p TemplatePolicy) String() string {
	if p == PolicyKeep {
		return "keep"
	}
	return "expire"
}

// Health-check defaults and limits. The defaults are Kamailio dispatcher's
// usual figures scaled to a load balancer: a probe every 5 s, 2 s to
// answer, 3 failures to go down (so a dead server is out within about 15 s,
// one lost datagram never flaps it) and 2 successes to come back.
const (
	DefaultCheckInterval = 5 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckFail     = 3
	DefaultCheckRise     = 2
	// MinCheckInterval bounds the probe rate per real server (10/s).
	MinCheckInterval = 100 * time.Millisecond
	// MaxCheckInterval is one hour.
	MaxCheckInterval = time.Hour
	// MaxCheckCount bounds --fail and --rise.
	MaxCheckCount = 100
	// MaxCheckCodes bounds the --codes list.
	MaxCheckCodes = 32
	// MaxScriptArgs bounds a script check's arguments.
	MaxScriptArgs = 64
)

// CodeRange is an inclusive range of SIP status codes.
type CodeRange struct{ Lo, Hi uint16 }

// HealthCheck configures the health checking of a service's real servers.
type HealthCheck struct {
	Type     CheckType
	Interval time.Duration // between probes of one real server
	Timeout  time.Duration // for one probe; at most Interval
	Fail     int           // consecutive failures that take an up server down
	Rise     int           // consecutive successes that bring a down server up
	// Port is the port probed; 0 means the real server's port.
	Port uint16
	// Codes are the status codes that count as alive. Empty means, for
	// SIP, any final response (200..699) except 408 Request Timeout; for
	// HTTP, 200..299.
	Codes  []CodeRange
	OnFail TemplatePolicy
	// RetryInterval, when set, is the delay before the next probe after a
	// failure while the server is still up (keepalived's
	// delay_before_retry); 0 means Interval.
	RetryInterval time.Duration
	// StartDown makes real servers start down until Rise probes pass
	// (keepalived's alpha): when the check is set, and for servers added
	// to (or revived in) a service that has it.
	StartDown bool

	// Script is a script check's command and arguments; ScriptUser the
	// "user" or "user:group" it runs as ("" = the daemon's user); Dynamic
	// takes the server's weight from the exit status (2..255 → status-2).
	Script     []string
	ScriptUser string
	Dynamic    bool
	// URL is an HTTP check's path, Digest the MD5 of the body in lower-case
	// hex ("" = not checked), VirtualHost the Host header and TLS server
	// name ("" = the server's address).
	URL         string
	Digest      string
	VirtualHost string
}

// ErrNoCheck reports a real-server command on a service with no health check.
var ErrNoCheck = errors.New("no health check on this service")

// DefaultHealthCheck returns a check of type t with the default figures.
func DefaultHealthCheck(t CheckType) HealthCheck {
	return HealthCheck{Type: t, Interval: DefaultCheckInterval, Timeout: DefaultCheckTimeout,
		Fail: DefaultCheckFail, Rise: DefaultCheckRise}
}

// Validate checks the figures of a health check.
func (h HealthCheck) Validate() error {
	switch {
	case h.Type > CheckHTTPS || h.Type == CheckNone:
		return fmt.Errorf("check type %d: %w", h.Type, ErrInvalid)
	case h.Interval < MinCheckInterval || h.Interval > MaxCheckInterval:
		return fmt.Errorf("interval %v (%v..%v): %w", h.Interval, MinCheckInterval, MaxCheckInterval, ErrInvalid)
	case h.Timeout <= 0 || h.Timeout > h.Interval:
		return fmt.Errorf("timeout %v (0..interval %v): %w", h.Timeout, h.Interval, ErrInvalid)
	case h.Fail < 1 || h.Fail > MaxCheckCount || h.Rise < 1 || h.Rise > MaxCheckCount:
		return fmt.Errorf("fail %d, rise %d (1..%d): %w", h.Fail, h.Rise, MaxCheckCount, ErrInvalid)
	case len(h.Codes) > MaxCheckCodes:
		return fmt.Errorf("%d code ranges (at most %d): %w", len(h.Codes), MaxCheckCodes, ErrInvalid)
	case len(h.Codes) > 0 && h.Type != CheckSIPOptions && h.Type != CheckHTTP && h.Type != CheckHTTPS:
		return fmt.Errorf("status codes for a %v check: %w", h.Type, ErrInvalid)
	case h.OnFail > PolicyKeep:
		return fmt.Errorf("template policy %d: %w", h.OnFail, ErrInvalid)
	case h.RetryInterval != 0 && (h.RetryInterval < MinCheckInterval || h.RetryInterval > MaxCheckInterval):
		return fmt.Errorf("retry interval %v (%v..%v): %w", h.RetryInterval, MinCheckInterval, MaxCheckInterval, ErrInvalid)
	case (h.Type == CheckScript) != (len(h.Script) > 0) || len(h.Script) > MaxScriptArgs || h.Script != nil && h.Script[0] == "":
		return fmt.Errorf("script %q for a %v check: %w", h.Script, h.Type, ErrInvalid)
	case h.Type != CheckScript && (h.ScriptUser != "" || h.Dynamic):
		return fmt.Errorf("script user or dynamic weight for a %v check: %w", h.Type, ErrInvalid)
	case h.Type == CheckScript && h.Port != 0:
		return fmt.Errorf("port for a script check: %w", ErrInvalid)
	case (h.Type == CheckHTTP || h.Type == CheckHTTPS) != (h.URL != ""):
		return fmt.Errorf("url %q for a %v check: %w", h.URL, h.Type, ErrInvalid)
	case h.Type != CheckHTTP && h.Type != CheckHTTPS && (h.Digest != "" || h.VirtualHost != ""):
		return fmt.Errorf("digest or virtual host for a %v check: %w", h.Type, ErrInvalid)
	case h.URL != "" && h.URL[0] != '/':
		return fmt.Errorf("url %q (a path): %w", h.URL, ErrInvalid)
	case h.Digest != "" && !isMD5Hex(h.Digest):
		return fmt.Errorf("digest %q (MD5, lower-case hex): %w", h.Digest, ErrInvalid)
	}
	hi := 699
	if h.Type != CheckSIPOptions {
		hi = 599
	}
	for _, r := range h.Codes {
		if r.Lo < 100 || int(r.Hi) > hi || r.Lo > r.Hi {
			return fmt.Errorf("status codes %d-%d (100..%d): %w", r.Lo, r.Hi, hi, ErrInvalid)
		}
	}
	return nil
}

func isMD5Hex(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// Accepts reports whether a response status code counts as alive.
func (h *HealthCheck) Accepts(code int) bool {
	if len(h.Codes) == 0 {
		if h.Type != CheckSIPOptions {
			return code >= 200 && code <= 299
		}
		return code >= 200 && code <= 699 && code != 408
	}
	for _, r := range h.Codes {
		if code >= int(r.Lo) && code <= int(r.Hi) {
			return true
		}
	}
	return false
}

// Equal reports whether two checks are the same.
func (h *HealthCheck) Equal(o *HealthCheck) bool {
	if h == nil || o == nil {
		return h == o
	}
	return h.Type == o.Type && h.Interval == o.Interval && h.Timeout == o.Timeout && h.Fail == o.Fail &&
		h.Rise == o.Rise && h.Port == o.Port && h.OnFail == o.OnFail && slices.Equal(h.Codes, o.Codes) &&
		h.RetryInterval == o.RetryInterval && h.StartDown == o.StartDown && slices.Equal(h.Script, o.Script) &&
		h.ScriptUser == o.ScriptUser && h.Dynamic == o.Dynamic && h.URL == o.URL && h.Digest == o.Digest &&
		h.VirtualHost == o.VirtualHost
}

// clone returns a copy of h that shares no slice with it.
func (h *HealthCheck) clone() *HealthCheck {
	if h == nil {
		return nil
	}
	c := *h
	c.Codes = slices.Clone(h.Codes)
	c.Script = slices.Clone(h.Script)
	return &c
}

// SetHealthCheck sets (or, with nil or CheckNone, removes) the health check
// of a service, which its real servers follow unless they have their own
// (SetDestHealthCheck). Removing it, or changing its type, marks those
// servers up again (down with StartDown): a new check starts from a clean
// slate.
func (c *Config) SetHealthCheck(k ServiceKey, h *HealthCheck) error {
	h, err := normCheck(k, h)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	if e.check.Equal(h) {
		return nil
	}
	for _, d := range e.dests {
		if d.check == nil && d.resetHealth(e.check, h) {
			e.destChanges++
		}
	}
	e.check, e.compiled = h, nil
	c.changed()
	return nil
}

func normCheck(k ServiceKey, h *HealthCheck) (*HealthCheck, error) {
	if h != nil && h.Type == CheckNone {
		h = nil
	}
	if h != nil {
		if err := h.Validate(); err != nil {
			return nil, fmt.Errorf("%v: %w", k, err)
		}
	}
	return h.clone(), nil
}

// resetHealth starts a real server's health afresh when its effective
// check changes from old to nw: up (down with StartDown) when the check is
// removed, added or changes type; the dynamic weight of a script check
// goes with the check.
func (d *destEntry) resetHealth(old, nw *HealthCheck) (changed bool) {
	down, dyn := d.down, d.hasDyn
	if nw == nil || old == nil || nw.Type != old.Type {
		d.down = nw != nil && nw.StartDown
	}
	if nw == nil || !nw.Dynamic || old == nil || !slices.Equal(nw.Script, old.Script) {
		d.hasDyn = false
	}
	// A change of what the scheduler sees is a destination update to it
	// (sched.Spec.DestChanges).
	return d.down != down || d.hasDyn != dyn
}

// SetDestHealthCheck sets (or, with nil or CheckNone, removes) a real
// server's own health check, which overrides its service's (keepalived
// attaches checkers to real servers). addr's port 0 means the service
// port.
func (c *Config) SetDestHealthCheck(k ServiceKey, addr netip.AddrPort, h *HealthCheck) error {
	h, err := normCheck(k, h)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	d := e.dests[i]
	if d.check.Equal(h) {
		return nil
	}
	if d.resetHealth(d.effective(e), cmpOr(h, e.check)) {
		e.destChanges++
	}
	d.check, e.compiled = h, nil
	c.changed()
	return nil
}

func cmpOr(a, b *HealthCheck) *HealthCheck {
	if a != nil {
		return a
	}
	return b
}

// effective is the check a real server follows: its own, else its
// service's.
func (d *destEntry) effective(e *svcEntry) *HealthCheck { return cmpOr(d.check, e.check) }

// HealthCheck returns a copy of a service's health check, or nil.
func (c *Config) HealthCheck(k ServiceKey) (*HealthCheck, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil || e.check == nil {
		return nil, err
	}
	return e.check.clone(), nil
}

// SetDestWeightOverride records the weight a dynamic script check set for
// a real server (keepalived's misc_dynamic), or with w < 0 clears it: the
// scheduler then uses it instead of the configured weight (a drain still
// wins). The configured weight, -L and -S are untouched. It reports
// whether anything changed.
func (c *Config) SetDestWeightOverride(k ServiceKey, addr netip.AddrPort, w int) (bool, error) {
	if w > sched.MaxWeight {
		return false, fmt.Errorf("%v -> %v: %w", k, addr, ErrRange)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return false, err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return false, fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	d := e.dests[i]
	has := w >= 0
	if d.hasDyn == has && (!has || d.dynWeight == w) {
		return false, nil
	}
	d.hasDyn, d.dynWeight = has, max(w, 0)
	e.destChanges++ // a weight change: the kernel's upd_dest
	e.compiled = nil
	c.changed()
	return true, nil
}

// SetDestHealth records the health checker's verdict on a real server
// (addr's port 0 means the service port). A down server is skipped by the
// scheduler as if its weight were 0, and its templates follow the check's
// TemplatePolicy; its configured weight is untouched. It reports whether
// the state changed (and so a new snapshot must be published).
func (c *Config) SetDestHealth(k ServiceKey, addr netip.AddrPort, up bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return false, err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return false, fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	d := e.dests[i]
	if d.effective(e) == nil && !up {
		return false, fmt.Errorf("%v: %w", e.cfg.Key(), ErrNoCheck)
	}
	if d.down == !up {
		return false, nil
	}
	d.down = !up
	e.destChanges++
	e.compiled = nil
	c.changed()
	return true, nil
}

// Drain puts a real server into maintenance (xvsadm --drain): its weight
// becomes 0, so it gets no new calls, and it is marked draining, so its
// live templates stay valid until they go idle, even with
// expire_quiescent_template. Undrain restores weight restore, or with
// restore < 0 the weight the server had. Draining a draining server only
// updates the weight to restore (when restore >= 0).
func (c *Config) Drain(k ServiceKey, addr netip.AddrPort, restore int) error {
	if restore > sched.MaxWeight {
		return fmt.Errorf("%v -> %v: %w", k, addr, ErrRange)
	}
	return c.drain(k, addr, true, restore)
}

// Undrain ends a drain: the server gets back the weight it had when the
// drain began (1, ipvsadm's default, if that was 0). Undraining a server
// that is not draining changes nothing.
func (c *Config) Undrain(k ServiceKey, addr netip.AddrPort) error {
	return c.drain(k, addr, false, -1)
}

func (c *Config) drain(k ServiceKey, addr netip.AddrPort, on bool, restore int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.service(k)
	if err != nil {
		return err
	}
	i := e.destIndex(addr)
	if i < 0 {
		return fmt.Errorf("%v -> %v: %w", e.cfg.Key(), addr, ErrNoDest)
	}
	d := e.dests[i]
	if d.draining == on {
		if on && restore >= 0 && restore != d.drainWeight {
			d.drainWeight = restore
			e.compiled = nil
			c.changed()
		}
		return nil
	}
	if on {
		d.drainWeight, d.cfg.Weight = d.cfg.Weight, 0
		if restore >= 0 {
			d.drainWeight = restore
		}
	} else {
		d.cfg.Weight = d.drainWeight
		if d.cfg.Weight == 0 {
			d.cfg.Weight = 1
		}
		d.drainWeight = 0
	}
	d.draining = on
	e.destChanges++
	e.compiled = nil
	c.changed()
	return nil
}
