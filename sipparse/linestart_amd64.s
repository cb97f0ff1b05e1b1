#include "textflag.h"

// The block test, for the positions k..k+w-1 of one block: a lane is set
// when b[k] is LF and b[k+1] is C, c, I, i (OR 0x20 folds the case; no
// other byte folds onto 'c' or 'i'), CR or LF. In: Y0/X0 = b[k:k+w],
// Y1/X1 = b[k+1:k+w+1]; out: BX, one bit per position.

// func lineStartSSE2(b []byte, from int) int
// Requires len(b) > 16.
TEXT ·lineStartSSE2(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	MOVQ from+24(FP), AX
	MOVQ $0x0a0a0a0a0a0a0a0a, BX
	MOVQ BX, X8
	PUNPCKLQDQ X8, X8
	MOVQ $0x2020202020202020, BX
	MOVQ BX, X9
	PUNPCKLQDQ X9, X9
	MOVQ $0x6363636363636363, BX
	MOVQ BX, X10
	PUNPCKLQDQ X10, X10
	MOVQ $0x6969696969696969, BX
	MOVQ BX, X11
	PUNPCKLQDQ X11, X11
	MOVQ $0x0d0d0d0d0d0d0d0d, BX
	MOVQ BX, X12
	PUNPCKLQDQ X12, X12
	LEAQ -17(DX), R8 // the last block starts here
	CMPQ AX, R8
	JA   sse2tail

sse2loop:
	MOVOU (SI)(AX*1), X0
	MOVOU 1(SI)(AX*1), X1
	PCMPEQB X8, X0
	MOVOU X1, X2
	POR X9, X2
	MOVOU X2, X3
	PCMPEQB X10, X2
	PCMPEQB X11, X3
	MOVOU X1, X4
	PCMPEQB X12, X1
	PCMPEQB X8, X4
	POR X3, X2
	POR X4, X1
	POR X2, X1
	PAND X0, X1
	PMOVMSKB X1, BX
	TESTL BX, BX
	JNZ  sse2found
	ADDQ $16, AX
	CMPQ AX, R8
	JBE  sse2loop

sse2tail:
	// Fewer than 17 bytes from k: test the last block, b[len-17:], and
	// drop its positions before k. Nothing is left when k >= len-1.
	LEAQ -1(DX), CX
	CMPQ AX, CX
	JAE  sse2none
	MOVOU (SI)(R8*1), X0
	MOVOU 1(SI)(R8*1), X1
	PCMPEQB X8, X0
	MOVOU X1, X2
	POR X9, X2
	MOVOU X2, X3
	PCMPEQB X10, X2
	PCMPEQB X11, X3
	MOVOU X1, X4
	PCMPEQB X12, X1
	PCMPEQB X8, X4
	POR X3, X2
	POR X4, X1
	POR X2, X1
	PAND X0, X1
	PMOVMSKB X1, BX
	MOVQ AX, CX
	SUBQ R8, CX
	SHRQ CX, BX
	TESTQ BX, BX
	JZ   sse2none

sse2found:
	BSFQ BX, BX
	LEAQ 1(AX)(BX*1), AX
	MOVQ AX, ret+32(FP)
	RET

sse2none:
	MOVQ $-1, ret+32(FP)
	RET

// func lineStartAVX2(b []byte, from int) int
// Requires len(b) > 32.
TEXT ·lineStartAVX2(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	MOVQ from+24(FP), AX
	MOVQ $0x0a, BX
	MOVQ BX, X8
	VPBROADCASTB X8, Y8
	MOVQ $0x20, BX
	MOVQ BX, X9
	VPBROADCASTB X9, Y9
	MOVQ $0x63, BX
	MOVQ BX, X10
	VPBROADCASTB X10, Y10
	MOVQ $0x69, BX
	MOVQ BX, X11
	VPBROADCASTB X11, Y11
	MOVQ $0x0d, BX
	MOVQ BX, X12
	VPBROADCASTB X12, Y12
	LEAQ -33(DX), R8 // the last block starts here
	CMPQ AX, R8
	JA   avx2tail

avx2loop:
	VMOVDQU (SI)(AX*1), Y0
	VMOVDQU 1(SI)(AX*1), Y1
	VPCMPEQB Y8, Y0, Y0
	VPOR Y9, Y1, Y2
	VPCMPEQB Y10, Y2, Y3
	VPCMPEQB Y11, Y2, Y2
	VPCMPEQB Y12, Y1, Y4
	VPCMPEQB Y8, Y1, Y1
	VPOR Y3, Y2, Y2
	VPOR Y4, Y1, Y1
	VPOR Y2, Y1, Y1
	VPAND Y0, Y1, Y1
	VPMOVMSKB Y1, BX
	TESTL BX, BX
	JNZ  avx2found
	ADDQ $32, AX
	CMPQ AX, R8
	JBE  avx2loop

avx2tail:
	LEAQ -1(DX), CX
	CMPQ AX, CX
	JAE  avx2none
	VMOVDQU (SI)(R8*1), Y0
	VMOVDQU 1(SI)(R8*1), Y1
	VPCMPEQB Y8, Y0, Y0
	VPOR Y9, Y1, Y2
	VPCMPEQB Y10, Y2, Y3
	VPCMPEQB Y11, Y2, Y2
	VPCMPEQB Y12, Y1, Y4
	VPCMPEQB Y8, Y1, Y1
	VPOR Y3, Y2, Y2
	VPOR Y4, Y1, Y1
	VPOR Y2, Y1, Y1
	VPAND Y0, Y1, Y1
	VPMOVMSKB Y1, BX
	MOVQ AX, CX
	SUBQ R8, CX
	SHRQ CX, BX
	TESTQ BX, BX
	JZ   avx2none

avx2found:
	VZEROUPPER
	BSFQ BX, BX
	LEAQ 1(AX)(BX*1), AX
	MOVQ AX, ret+32(FP)
	RET

avx2none:
	VZEROUPPER
	MOVQ $-1, ret+32(FP)
	RET

// func valueEndSSE2(b []byte, i, lim int) int
// Requires len(b) >= 16 and 0 <= i <= lim <= len(b). A byte is visible
// ASCII iff, as a signed byte, it is above 0x20 and is not 0x7F.
TEXT ·valueEndSSE2(SB), NOSPLIT, $0-48
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	MOVQ i+24(FP), AX
	MOVQ lim+32(FP), DI
	MOVQ $0x2020202020202020, BX
	MOVQ BX, X8
	PUNPCKLQDQ X8, X8
	MOVQ $0x7f7f7f7f7f7f7f7f, BX
	MOVQ BX, X9
	PUNPCKLQDQ X9, X9
	LEAQ -16(DX), R8 // the last block starts here

veloop:
	CMPQ AX, DI
	JAE  velim
	CMPQ AX, R8
	JA   vetail
	MOVOU (SI)(AX*1), X0
	MOVOU X0, X1
	PCMPGTB X8, X0
	PCMPEQB X9, X1
	PMOVMSKB X0, BX
	PMOVMSKB X1, CX
	NOTL BX
	ORL  CX, BX
	ANDL $0xffff, BX
	JNZ  vefound
	ADDQ $16, AX
	JMP  veloop

vetail:
	// Fewer than 16 bytes from i: test the last block, b[len-16:], and
	// drop its positions before i.
	MOVOU (SI)(R8*1), X0
	MOVOU X0, X1
	PCMPGTB X8, X0
	PCMPEQB X9, X1
	PMOVMSKB X0, BX
	PMOVMSKB X1, CX
	NOTL BX
	ORL  CX, BX
	ANDL $0xffff, BX
	MOVQ AX, CX
	SUBQ R8, CX
	SHRQ CX, BX
	TESTQ BX, BX
	JZ   velim

vefound:
	BSFQ BX, BX
	ADDQ BX, AX
	CMPQ AX, DI
	CMOVQHI DI, AX
	MOVQ AX, ret+40(FP)
	RET

velim:
	MOVQ DI, ret+40(FP)
	RET

// func indexEOLSSE2(b []byte) int
// Requires len(b) >= 16.
TEXT ·indexEOLSSE2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), DX
	XORQ AX, AX
	MOVQ $0x0a0a0a0a0a0a0a0a, BX
	MOVQ BX, X8
	PUNPCKLQDQ X8, X8
	MOVQ $0x0d0d0d0d0d0d0d0d, BX
	MOVQ BX, X9
	PUNPCKLQDQ X9, X9
	LEAQ -16(DX), R8 // the last block starts here

eolloop:
	CMPQ AX, R8
	JA   eoltail
	MOVOU (SI)(AX*1), X0
	MOVOU X0, X1
	PCMPEQB X8, X0
	PCMPEQB X9, X1
	POR  X1, X0
	PMOVMSKB X0, BX
	TESTL BX, BX
	JNZ  eolfound
	ADDQ $16, AX
	JMP  eolloop

eoltail:
	CMPQ AX, DX
	JAE  eolnone
	MOVOU (SI)(R8*1), X0
	MOVOU X0, X1
	PCMPEQB X8, X0
	PCMPEQB X9, X1
	POR  X1, X0
	PMOVMSKB X0, BX
	MOVQ AX, CX
	SUBQ R8, CX
	SHRQ CX, BX
	TESTQ BX, BX
	JZ   eolnone

eolfound:
	BSFQ BX, BX
	ADDQ BX, AX
	MOVQ AX, ret+24(FP)
	RET

eolnone:
	MOVQ $-1, ret+24(FP)
	RET
