package health

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/xvs-lb/xvs/internal/ipvs"
)

// maxHTTPBody bounds the body an HTTP check reads (and digests): a page
// larger than this fails the check instead of filling memory.
const maxHTTPBody = 4 << 20

// httpProbe GETs the check's URL from server (keepalived's HTTP_GET, and
// SSL_GET for https: TLS without certificate verification, the virtual
// host as server name) and checks the status code (default 200..299) and,
// when the check has one, the MD5 digest of the body.
func httpProbe(ctx context.Context, h *ipvs.HealthCheck, server netip.AddrPort) (bool, string) {
	scheme := "http"
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if h.Type == ipvs.CheckHTTPS {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, ServerName: h.VirtualHost} // #nosec G402: keepalived's SSL_GET does not verify either
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+server.String()+h.URL, nil)
	if err != nil {
		return false, "request: " + shortErr(err)
	}
	if h.VirtualHost != "" {
		req.Host = h.VirtualHost
	}
	req.Header.Set("User-Agent", "xvs health check")
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return false, outcomeRefused
		case ctx.Err() != nil:
			return false, outcomeTimeout
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, outcomeTimeout
		}
		return false, shortErr(err)
	}
	defer resp.Body.Close()
	text := strconv.Itoa(resp.StatusCode)
	if s := http.StatusText(resp.StatusCode); s != "" {
		text += " " + s
	}
	if !h.Accepts(resp.StatusCode) {
		return false, text
	}
	if h.Digest == "" {
		return true, text
	}
	sum := md5.New()
	n, err := io.Copy(sum, io.LimitReader(resp.Body, maxHTTPBody+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return false, outcomeTimeout
	case err != nil:
		return false, "body: " + shortErr(err)
	case n > maxHTTPBody:
		return false, "body larger than " + strconv.Itoa(maxHTTPBody>>20) + " MiB"
	}
	if hex.EncodeToString(sum.Sum(nil)) != h.Digest {
		return false, "digest mismatch"
	}
	return true, text + " digest ok"
}
