package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
	"github.com/xvs-lb/xvs/sipparse"
)

// Probe paths: how a probe reached the real server.
const (
	PathDirect     = "direct"      // to the real server's own address (NAT, TCP checks)
	PathDR         = "dr-raw"      // to the VIP at the real server's MAC (direct routing)
	PathDRFallback = "dr-fallback" // direct routing, but raw send impossible: to its own address
)

// Probe outcomes shown as LastCheck when no SIP status applies.
const (
	outcomeTimeout = "timeout"
	outcomeRefused = "refused" // ICMP port unreachable or TCP RST
	outcomeOK      = "ok"
	outcomeReply   = "reply"
)

// maxReply bounds a probe's reply datagram.
const maxReply = 4096

// maxReasonLen bounds the reason phrase kept for the listing.
const maxReasonLen = 32

// udpPing is the plain UDP check's payload: a double CRLF, the SIP
// keep-alive (RFC 5626), harmless to any UDP service.
var udpPing = []byte("\r\n\r\n")

// result is one probe's outcome.
type result struct {
	key     Key
	gen     uint64 // the target's generation when launched
	ok      bool
	outcome string
	rtt     time.Duration
	path    string
	// dynamic is the weight a dynamic script check reported: the exit
	// status less 2, or -1 (back to the configured weight).
	dynamic int
}

// newCallID returns a fresh Call-ID for one OPTIONS probe.
func newCallID(local netip.Addr) string {
	var b [8]byte
	rand.Read(b[:])
	return "xvs-hc-" + hex.EncodeToString(b[:]) + "@" + local.String()
}

// sipOptions builds the OPTIONS request of one probe: Request-URI the
// address probed (the VIP for direct routing), Via and From our own
// address:port so that the answer comes back to the probe's socket.
func sipOptions(target, local netip.AddrPort, callID string) []byte {
	var b [8]byte
	rand.Read(b[:])
	branch := "z9hG4bK-xvs-" + hex.EncodeToString(b[:6])
	tag := hex.EncodeToString(b[6:])
	var m bytes.Buffer
	fmt.Fprintf(&m, "OPTIONS sip:%s SIP/2.0\r\n", target)
	fmt.Fprintf(&m, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", local, branch)
	m.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&m, "From: <sip:xvs-health@%s>;tag=%s\r\n", local, tag)
	fmt.Fprintf(&m, "To: <sip:%s>\r\n", target)
	fmt.Fprintf(&m, "Call-ID: %s\r\n", callID)
	m.WriteString("CSeq: 1 OPTIONS\r\n")
	m.WriteString("Accept: application/sdp\r\n")
	m.WriteString("User-Agent: xvs health check\r\n")
	m.WriteString("Content-Length: 0\r\n\r\n")
	return m.Bytes()
}

// sipResponse classifies a datagram received by an OPTIONS probe: whether
// it answers callID, its status code, and "code reason" for the listing.
func sipResponse(payload []byte, callID string) (code int, text string, ours bool) {
	sl := sipparse.ParseStartLine(payload)
	if sl.Kind != sipparse.KindResponse {
		return 0, "", false
	}
	id, ok := sipparse.CallID(payload)
	if !ok || string(id) != callID {
		return 0, "", false
	}
	code = int(sl.StatusCode)
	line, _, _ := bytes.Cut(payload, []byte("\n"))
	line = bytes.TrimRight(line, "\r")
	text = strconv.Itoa(code)
	if len(line) > 12 { // "SIP/2.0 200 " + reason
		reason := line[12:]
		if len(reason) > maxReasonLen {
			reason = reason[:maxReasonLen]
		}
		text += " " + printable(reason)
	}
	return code, text, true
}

func printable(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}

// exchange sends payload (through send) and waits for a reply on replies
// until ctx ends. accept judges each reply: done stops waiting.
func exchange(ctx context.Context, send func() error, replies <-chan reply,
	accept func([]byte) (ok bool, outcome string, done bool)) (bool, string) {
	if err := send(); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return false, outcomeRefused
		}
		return false, "send: " + shortErr(err)
	}
	outcome := outcomeTimeout
	ok := false
	for {
		select {
		case <-ctx.Done():
			return ok, outcome
		case r := <-replies:
			if r.err != nil {
				if errors.Is(r.err, syscall.ECONNREFUSED) {
					return false, outcomeRefused
				}
				if errors.Is(r.err, net.ErrClosed) {
					return ok, outcome
				}
				continue
			}
			var done bool
			ok, outcome, done = accept(r.data)
			if done {
				return ok, outcome
			}
		}
	}
}

// reply is a datagram (or a socket error) for a probe.
type reply struct {
	data []byte
	err  error
}

// readLoop forwards c's datagrams and errors to ch until c is closed.
func readLoop(c *net.UDPConn, ch chan<- reply) {
	buf := make([]byte, maxReply)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case ch <- reply{err: err}:
			default:
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
			continue
		}
		select {
		case ch <- reply{data: bytes.Clone(buf[:n])}:
		default:
		}
	}
}

func shortErr(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	s := err.Error()
	if len(s) > 40 {
		s = s[:40]
	}
	return s
}

// tcpProbe opens and closes a TCP connection to addr.
func tcpProbe(ctx context.Context, addr netip.AddrPort) (bool, string) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return false, outcomeRefused
		case ctx.Err() != nil:
			return false, outcomeTimeout
		}
		return false, shortErr(err)
	}
	c.Close()
	return true, outcomeOK
}

// judge returns the accept function for a check's replies.
func judge(h *ipvs.HealthCheck, callID string) func([]byte) (bool, string, bool) {
	if h.Type != ipvs.CheckSIPOptions {
		return func([]byte) (bool, string, bool) { return true, outcomeReply, true }
	}
	return func(p []byte) (bool, string, bool) {
		code, text, ours := sipResponse(p, callID)
		if !ours {
			return false, outcomeTimeout, false
		}
		if code < 200 {
			return false, outcomeTimeout, false // provisional: wait for the final answer
		}
		return h.Accepts(code), text, true
	}
}
