// Package pe defines persistence engines: modules bound to a virtual service
// that add an extra key ("pe data") to its persistence templates, as Linux
// IPVS does with struct ip_vs_pe. The first engine is "sip", which keys
// templates by the SIP Call-ID so that every datagram of a call reaches the
// same real server while different calls spread out.
//
// # Shape, compared with IPVS
//
//	IPVS callback   here           notes
//	fill_param      Engine.Fill    returns the key bytes; never allocates
//	ct_match        (table)        templates compare pe data byte for byte, as SIP's ct_match does;
//	                               an engine that wants looser matching canonicalises in Fill
//	hashkey_raw     Engine.Hash    also feeds the data-hashing schedulers (mh), so every balancer
//	                               with the same configuration picks the same server for a key
//	show_pe_data    Engine.Show    escapes bytes that are unsafe on a terminal
//	conn_out        Engine.ConnOut packets from NAT real servers create templates (server-initiated requests)
//
// Engines are registered by name ([Register]); a service binds one by name
// (ipvsadm's --pe). Names follow IPVS: at most [MaxNameLen] bytes, exact and
// case-sensitive.
//
// # Adding an engine
//
// Implement [Engine] in a file of its own and call [Register] from an init
// function (or from the program's wiring). Nothing else changes: the pipeline,
// tables, listings and rules files handle any registered engine.
package pe

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

const (
	// MaxNameLen is IPVS's IP_VS_PENAME_MAXLEN: the kernel and ipvsadm keep
	// at most 16 bytes of a persistence-engine name.
	MaxNameLen = 16
	// MaxDataLen is IPVS's IP_VS_PEDATA_MAXLEN: pe data is stored with an
	// 8-bit length, so an engine's key is at most 255 bytes.
	MaxDataLen = 255
	// maxEngines bounds the registry: the engine id is one byte of every
	// template key, and 0 means "no engine".
	maxEngines = 255
)

// Status says why an engine produced no key for a packet. Values index
// counter arrays; String returns a stable metric label.
type Status uint8

const (
	StatusOK            Status = iota // key found
	StatusWrongProtocol               // the engine does not handle this L4 protocol (sip: UDP only)
	StatusNoPayload                   // no L4 payload (empty datagram, or a non-first fragment)
	StatusNotFound                    // the payload carries no key (sip: no Call-ID header, or not SIP)
	StatusInvalid                     // a key is present but unusable (empty, bad bytes, unterminated)
	StatusTooLong                     // the key exceeds MaxDataLen
	NumStatus
)

var statusNames = [NumStatus]string{"ok", "wrong_protocol", "no_payload", "not_found", "invalid", "too_long"}

func (s Status) String() string {
	if s < NumStatus {
		return statusNames[s]
	}
	return "unknown"
}

// Packet is what an engine sees of a datagram. Payload is borrowed from the
// frame being processed and is valid only during the call.
type Packet struct {
	Proto   uint8  // L4 protocol number (17 = UDP)
	Payload []byte // L4 payload; nil for a non-first fragment
}

// Engine is a persistence engine. Implementations must be safe for
// concurrent use by all workers and must not allocate in Fill, Hash or Show
// (when dst has room).
type Engine interface {
	// Name is the name services bind the engine by (≤ MaxNameLen bytes).
	Name() string
	// Fill returns the engine's key for the packet: a subslice of
	// pkt.Payload or of scratch (len(scratch) ≥ MaxDataLen), at most
	// MaxDataLen bytes, or a Status saying why there is none. The caller
	// copies the key if it keeps it.
	Fill(pkt *Packet, scratch []byte) (data []byte, st Status)
	// Hash hashes a key with a seed. Data-hashing schedulers use it with a
	// fixed seed, so it must be deterministic across processes and hosts.
	Hash(data []byte, seed uint64) uint64
	// Show appends the key's display form to dst (ipvsadm -Lcn
	// --persistent-conn prints it in the pe_data column).
	Show(dst, data []byte) []byte
	// ConnOut reports whether a request sent by a NAT real server that
	// matches no connection creates (or re-homes) the template for its key,
	// so that the peer's answers reach the same real server (IPVS conn_out).
	ConnOut() bool
}

// ID is an engine's small registry id, stored in template keys. 0 is "no engine".
type ID uint8

// ErrExists reports a second engine with a name already registered (IPVS:
// "pe already existed in the system").
var ErrExists = errors.New("persistence engine already registered")

var registry struct {
	mu     sync.RWMutex
	byName map[string]ID
	byID   []Engine // index = ID; byID[0] is nil
}

// Register adds an engine to the registry and returns its id.
func Register(e Engine) (ID, error) {
	name := e.Name()
	if name == "" || len(name) > MaxNameLen {
		return 0, fmt.Errorf("register %q: name must be 1..%d bytes", name, MaxNameLen)
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.byName == nil {
		registry.byName = make(map[string]ID)
		registry.byID = []Engine{nil}
	}
	if _, dup := registry.byName[name]; dup {
		return 0, fmt.Errorf("register %q: %w", name, ErrExists)
	}
	if len(registry.byID) > maxEngines {
		return 0, fmt.Errorf("register %q: more than %d engines", name, maxEngines)
	}
	id := ID(len(registry.byID))
	registry.byID = append(registry.byID, e)
	registry.byName[name] = id
	return id, nil
}

// MustRegister is Register for init functions; it panics on error.
func MustRegister(e Engine) ID {
	id, err := Register(e)
	if err != nil {
		panic(err)
	}
	return id
}

// Lookup finds a registered engine by its exact name.
func Lookup(name string) (Engine, ID, bool) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	id, ok := registry.byName[name]
	if !ok {
		return nil, 0, false
	}
	return registry.byID[id], id, true
}

// Exists reports whether an engine of that name is registered; it is the
// validation function the configuration model takes.
func Exists(name string) bool {
	_, _, ok := Lookup(name)
	return ok
}

// ByID returns the engine with the given id, or nil.
func ByID(id ID) Engine {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	if int(id) < len(registry.byID) {
		return registry.byID[id]
	}
	return nil
}

// Names lists the registered engines, sorted.
func Names() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	names := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
