package health

import (
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

// httpServer serves /health with a status and a body the test changes,
// and records the Host header and TLS server name of each request.
type httpServer struct {
	*httptest.Server
	code atomic.Int32
	body atomic.Pointer[string]
	host atomic.Pointer[string]
	sni  atomic.Pointer[string]
}

func newHTTPServer(t *testing.T, tlsOn bool) *httpServer {
	s := &httpServer{}
	s.code.Store(200)
	b := "ok\n"
	s.body.Store(&b)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		s.host.Store(&host)
		if r.TLS != nil {
			sni := r.TLS.ServerName
			s.sni.Store(&sni)
		}
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(s.code.Load()))
		w.Write([]byte(*s.body.Load()))
	})
	if tlsOn {
		s.Server = httptest.NewUnstartedServer(h)
		s.Server.TLS = &tls.Config{}
		s.Server.StartTLS()
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

func (s *httpServer) addr() netip.AddrPort {
	return netip.MustParseAddrPort(s.Listener.Addr().String())
}

func md5hex(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

// keepalived's HTTP_GET: the status must be in the codes (200..299 by
// default) and, with a digest, the body's MD5 must match; SSL_GET is the
// same over TLS without verification, the virtual host as Host and SNI.
func TestHTTPCheck(t *testing.T) {
	for _, https := range []bool{false, true} {
		s := newHTTPServer(t, https)
		h := fast(ipvs.CheckHTTP)
		if https {
			h.Type = ipvs.CheckHTTPS
		}
		h.URL, h.VirtualHost, h.Digest = "/health", "sip.example", md5hex("ok\n")
		r := newRig(t, h, s.addr())
		waitFor(t, "checked", 2*time.Second, func() bool { st := r.status(s.addr()); return st.Checked && st.Up })
		if st := r.status(s.addr()); st.Last != "200 OK digest ok" {
			t.Errorf("https=%v last %q", https, st.Last)
		}
		if got := *s.host.Load(); got != "sip.example" {
			t.Errorf("Host %q", got)
		}
		if https {
			if got := *s.sni.Load(); got != "sip.example" {
				t.Errorf("SNI %q", got)
			}
		}
		changed := "changed\n"
		s.body.Store(&changed)
		waitFor(t, "down on a digest mismatch", 2*time.Second, func() bool { return r.down(s.addr()) })
		if st := r.status(s.addr()); st.Last != "digest mismatch" {
			t.Errorf("last %q", st.Last)
		}
		ok := "ok\n"
		s.body.Store(&ok)
		waitFor(t, "up", 2*time.Second, func() bool { return !r.down(s.addr()) })
		s.code.Store(503)
		waitFor(t, "down on 503", 2*time.Second, func() bool { return r.down(s.addr()) })
		r.stop()
	}
	// Status codes narrow or widen what counts as alive.
	s := newHTTPServer(t, false)
	s.code.Store(404)
	h := fast(ipvs.CheckHTTP)
	h.URL, h.Codes = "/health", []ipvs.CodeRange{{Lo: 200, Hi: 299}, {Lo: 404, Hi: 404}}
	r := newRig(t, h, s.addr())
	waitFor(t, "checked", 2*time.Second, func() bool { return r.status(s.addr()).Checked })
	time.Sleep(300 * time.Millisecond)
	if r.down(s.addr()) {
		t.Error("404 took the server down although listed")
	}
	s.Close()
	waitFor(t, "down when closed", 2*time.Second, func() bool { return r.down(s.addr()) })
	if st := r.status(s.addr()); st.Last != outcomeRefused {
		t.Errorf("last %q", st.Last)
	}
}

// A real server's own check overrides the service's; RetryInterval probes
// a failing server sooner; StartDown starts servers down.
func TestPerServerCheckRetryAndStartDown(t *testing.T) {
	a := newSIPServer(t, "127.0.0.1:0")
	defer a.c.Close()
	web := newHTTPServer(t, false)
	h := fast(ipvs.CheckSIPOptions)
	h.Interval, h.Timeout, h.Fail, h.Rise = time.Second, 100*time.Millisecond, 3, 1
	h.RetryInterval = 100 * time.Millisecond
	h.StartDown = true
	r := newRig(t, h, a.addr(), web.addr())
	if !r.down(a.addr()) || !r.down(web.addr()) {
		t.Fatal("servers did not start down")
	}
	own := fast(ipvs.CheckHTTP)
	own.URL = "/health"
	must(t, r.cfg.SetDestHealthCheck(r.svc, web.addr(), &own))
	r.snap.Store(r.cfg.Snapshot())
	waitFor(t, "both up", 3*time.Second, func() bool { return !r.down(a.addr()) && !r.down(web.addr()) })
	if st := r.status(web.addr()); st.Check != ipvs.CheckHTTP {
		t.Errorf("web checked by %v", st.Check)
	}
	if st := r.status(a.addr()); st.Check != ipvs.CheckSIPOptions {
		t.Errorf("a checked by %v", st.Check)
	}
	// Silence: with a 1 s interval, 3 failures would take 3 s; the retries
	// come 0.1 s apart, so a goes down within about 1.3 s.
	a.code.Store(0)
	start := time.Now()
	waitFor(t, "a down", 3*time.Second, func() bool { return r.down(a.addr()) })
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("down after %v: retries did not come sooner", took)
	}
}
