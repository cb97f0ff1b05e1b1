package dataplane_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/xvs-lb/xvs/dataplane"
	"github.com/xvs-lb/xvs/packet"
)

// serve is the loop one worker runs on one Queue: receive a batch, decide
// each frame (rewrite it in place and send it, or give it back), transmit.
// The Batch is allocated once; nothing in the loop allocates.
func serve(q dataplane.Queue, decide func(frame []byte) (send bool)) error {
	b := dataplane.NewBatch(packet.LinkEthernet)
	for {
		if err := q.Receive(b, 100*time.Millisecond); err != nil {
			if errors.Is(err, dataplane.ErrClosed) {
				return nil
			}
			return err
		}
		for i, f := range b.Frames[:b.N] {
			b.Send[i] = decide(f)
		}
		if err := q.Transmit(b); err != nil {
			return err
		}
	}
}

// A worker loop over the in-memory queue (what the backends' tests use): it
// forwards the frames long enough to be Ethernet and recycles the rest.
func Example() {
	q := dataplane.NewMemQueue(packet.LinkEthernet)
	q.Inject(make([]byte, 60), []byte{1, 2, 3}, make([]byte, 90))
	done := make(chan error)
	go func() { done <- serve(q, func(f []byte) bool { return len(f) >= 14 }) }()
	for q.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	q.Close()
	fmt.Println(<-done)
	s := q.Stats()
	fmt.Println(len(q.Sent()), s.RxFrames, s.TxFrames, s.Recycled)
	// Output:
	// <nil>
	// 2 3 2 1
}
