package capture

import (
	"encoding/binary"
	"time"
)

// Builders of small captures for the tests (little-endian).

func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }

// ngBlock frames a pcapng block body with its type and both lengths.
func ngBlock(typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := le32(le32(nil, typ), n)
	b = append(b, body...)
	return le32(b, n)
}

func ngSHB() []byte {
	b := le32(nil, byteOrderMagic)
	b = le16(le16(b, 1), 0)
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0)) // section length unknown
	return ngBlock(blockSHB, b)
}

// ngOption encodes one option, padded.
func ngOption(code uint16, v []byte) []byte {
	b := le16(le16(nil, code), uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func ngIDB(link uint16, snaplen uint32, opts ...[]byte) []byte {
	b := le32(le16(le16(nil, link), 0), snaplen)
	for _, o := range opts {
		b = append(b, o...)
	}
	if len(opts) > 0 {
		b = append(b, ngOption(0, nil)...)
	}
	return ngBlock(blockIDB, b)
}

// ngEPB is an enhanced packet block with a microsecond timestamp (the
// default resolution).
func ngEPB(iface uint32, t time.Time, data []byte, wire int) []byte {
	us := uint64(t.UnixMicro())
	b := le32(nil, iface)
	b = le32(le32(b, uint32(us>>32)), uint32(us))
	b = le32(le32(b, uint32(len(data))), uint32(wire))
	return ngBlock(blockEPB, append(b, data...))
}

func ngSPB(data []byte) []byte {
	return ngBlock(blockSPB, append(le32(nil, uint32(len(data))), data...))
}

// pcapFile is a libpcap file (microseconds) with one record per frame.
func pcapFile(snaplen uint32, link uint32, frames ...[]byte) []byte {
	b := le32(nil, 0xa1b2c3d4)
	b = le16(le16(b, 2), 4)
	b = le32(le32(b, 0), 0)
	b = le32(le32(b, snaplen), link)
	for i, f := range frames {
		b = le32(le32(b, uint32(1700000000+i)), 0)
		b = le32(le32(b, uint32(len(f))), uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// frame is a 60-byte Ethernet frame whose first byte is n.
func frame(n byte) []byte {
	f := make([]byte, 60)
	f[0] = n
	return f
}
