package table_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/xvs-lb/xvs/table"
)

// A worker's template table keeps each call on one real server: the first
// datagram of a Call-ID schedules a server and inserts the template, later
// ones find it, until it has been idle for the persistence timeout. The
// caller reads the clock once per batch and passes it as now (monotonic
// nanoseconds).
func ExampleTemplates() {
	tmpl, err := table.NewTemplates(table.Config{Capacity: 1024})
	if err != nil {
		panic(err)
	}
	key := table.TemplateKey{
		Protocol: 17,
		Client:   netip.MustParseAddr("0.0.0.0"), // the client AND -M 0.0.0.0
		Virtual:  netip.MustParseAddrPort("192.0.2.1:5060"),
		PE:       1, // the persistence engine's id (pe.SIPID)
		PEData:   []byte("a84b4c76e66710@pc33"),
	}
	now := int64(0)
	if _, _, ok := tmpl.Lookup(&key, now); !ok {
		// Schedule a real server (destination 3 here) and remember it for
		// -p 60 seconds.
		_, res := tmpl.Insert(&key, 3, 60*time.Second, now)
		fmt.Println(res)
	}
	now += int64(30 * time.Second)
	ref, dest, ok := tmpl.Lookup(&key, now)
	fmt.Println(dest, ok)
	tmpl.Touch(ref, now) // each use restarts the timeout

	now += int64(61 * time.Second)
	_, _, ok = tmpl.Lookup(&key, now)
	fmt.Println(ok, tmpl.Stats().Live)
	// Output:
	// inserted
	// 3 true
	// false 0
}
