package capture

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/xvs-lb/xvs/internal/testenv"
)

func TestOpenEveryCapture(t *testing.T) {
	dir := testenv.SharedData(t, "pcap")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	want := map[string]struct {
		frames int
		link   layers.LinkType
	}{
		"heplify_sip_ipv6_udp.pcap":                {6, layers.LinkTypeEthernet},
		"heplify_sip_ipv4_tcp_retrans.pcap":        {196, layers.LinkTypeLinuxSLL},
		"sipnab_h263-over-rtp.pcap":                {49, layers.LinkTypeNull},
		"sipnab_b2bua-asterisk.pcapng":             {416, layers.LinkTypeEthernet},
		"sipnab_sipp-branch-scenario.part1.pcapng": {4500, layers.LinkTypeEthernet},
		"sngrep_ipv6frag.pcap":                     {34, layers.LinkTypeLinuxSLL},
		"zeek_sip-junk-before-request.pcap":        {2, layers.LinkTypeEthernet},
	}
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".tsv") {
			continue
		}
		r, err := Open(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := 0
		var link layers.LinkType
		for {
			fr, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s frame %d: %v", f, n+1, err)
			}
			n++
			if fr.Number != n || len(fr.Data) == 0 || fr.Time.IsZero() {
				t.Fatalf("%s: bad frame %+v", f, fr.Number)
			}
			link = fr.LinkType
		}
		r.Close()
		if w, ok := want[filepath.Base(f)]; ok {
			seen++
			if n != w.frames || link != w.link {
				t.Errorf("%s: %d frames link %v, want %d link %v", filepath.Base(f), n, link, w.frames, w.link)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("checked %d known captures, want %d", seen, len(want))
	}
}

func TestNotACapture(t *testing.T) {
	if _, err := NewReader(strings.NewReader("INVITE sip:a@b SIP/2.0\r\n")); !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v, want ErrFormat", err)
	}
}
