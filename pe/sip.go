package pe

import "github.com/xvs-lb/xvs/sipparse"

// SIPName is the name of the SIP engine, as in ipvsadm --pe sip.
const SIPName = "sip"

// SIP is the SIP persistence engine: the key is the Call-ID of a UDP SIP
// datagram, found by [sipparse.CallID] (long and compact header forms, any
// case, folding; see package sipparse for the exact rules and where they
// differ from the kernel's ip_vs_pe_sip). It is UDP only, like IPVS's.
type SIP struct{}

// SIPID is the registry id of the SIP engine.
var SIPID = MustRegister(SIP{})

func (SIP) Name() string { return SIPName }

func (SIP) Fill(pkt *Packet, _ []byte) ([]byte, Status) {
	if pkt.Proto != 17 {
		return nil, StatusWrongProtocol
	}
	if len(pkt.Payload) == 0 {
		return nil, StatusNoPayload
	}
	id, st := sipparse.FindCallID(pkt.Payload)
	return id, sipStatus[st]
}

// sipStatus maps sipparse's reasons onto the engine-neutral Status; the
// detailed reason stays available to callers that run sipparse.Scan.
var sipStatus = [sipparse.NumStatus]Status{
	sipparse.StatusOK:           StatusOK,
	sipparse.StatusNotSIP:       StatusNotFound,
	sipparse.StatusKeepalive:    StatusNotFound,
	sipparse.StatusNoCallID:     StatusNotFound,
	sipparse.StatusEmpty:        StatusInvalid,
	sipparse.StatusTooLong:      StatusTooLong,
	sipparse.StatusUnterminated: StatusInvalid,
	sipparse.StatusBadChar:      StatusInvalid,
	sipparse.StatusScanLimit:    StatusInvalid,
}

func (SIP) Hash(data []byte, seed uint64) uint64 { return HashData(data, seed) }

func (SIP) Show(dst, data []byte) []byte { return AppendEscaped(dst, data) }

func (SIP) ConnOut() bool { return true }
