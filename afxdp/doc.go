// Package afxdp is the AF_XDP data plane. (Package doc: see the final version.)
package afxdp
