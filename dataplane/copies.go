package dataplane

// CopyTransmitter is implemented by queues that can send frames the worker
// owns rather than the backend: copies the pipeline held while they waited
// (fragments that arrived before their datagram's decision, frames that
// waited for their next hop's MAC; see xvs's pipeline Worker.Emitted).
// TransmitCopies copies each frame into backend memory (a free UMEM frame, a
// socket write) and queues it on the TX side of interface port (an index in
// Options.Ifaces), in order; the slices are the worker's again when it
// returns. It returns how many frames it queued: the rest (a full TX ring,
// no free frame, an unknown port) are the caller's to count (xvs counts them
// as the worker's Unsent).
//
// The interface is optional: xvs's worker loop counts every emitted frame
// of a queue without it as unsent, so fragments that arrive before their first
// fragment are then lost (the sender's retransmission recovers) while in-order
// fragments, the common case, are forwarded in place.
type CopyTransmitter interface {
	TransmitCopies(port uint8, frames [][]byte) (int, error)
}

var _ CopyTransmitter = (*MemQueue)(nil)

// TransmitCopies implements CopyTransmitter: the frames are copied to the
// sent list.
func (q *MemQueue) TransmitCopies(port uint8, frames [][]byte) (int, error) {
	q.mu.Lock()
	for _, f := range frames {
		q.sent = append(q.sent, append([]byte(nil), f...))
		q.sentPort = append(q.sentPort, port)
		q.tx.Add(1)
	}
	q.mu.Unlock()
	return len(frames), nil
}
