// Package robust holds xvs's robustness tests — floods of unique Call-IDs,
// floods of hostile and malformed datagrams — and the small generators and
// measurements they share. Nothing in the product imports it.
//
// The in-process tests (no privileges, seconds) drive pipeline.Workers
// directly: a table of small capacity holding live dialogs while millions of
// unique Call-IDs stream in at the speed the core can decide them, and a
// catalogue of hostile inputs, each with the verdict and reason it must get,
// interleaved with good traffic. The lab test (root) runs the real `xvs run`
// on AF_XDP in a network-namespace lab and floods it from the client side
// with sendmmsg batches. docs/robustness.md reports the figures.
package robust
