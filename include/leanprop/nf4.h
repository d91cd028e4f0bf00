/* leanprop/nf4.h: 4-bit NormalFloat (NF4) weights, as bitsandbytes stores them
 * for QLoRA, and a matmul that dequantises them tile by tile.
 *
 * Layout (bitsandbytes' quantize_4bit(quant_type="nf4", blocksize=64,
 * compress_statistics=True)): the (OC, C) matrix is flattened row-major and cut
 * into blocks of 64 elements (the last block may be shorter, so any C works, no
 * padding; a block may span two rows). Each element stores the index of the
 * nearest NF4 code of x / absmax(block); two indices per byte, element 2j in
 * the HIGH nibble and 2j+1 in the low one. With double quantisation the
 * per-block absmax values are stored as 8 bits: their mean (absmax_offset) is
 * subtracted, then every 256 of them are scaled by their own absmax (absmax2,
 * fp32) and rounded to the nearest value of bitsandbytes' signed dynamic 8-bit
 * map (create_dynamic_map(signed=True): 0, +-1, and 7 decades of
 * +-10^-k * (0.1..1) means). Dequantised: absmax = dq[q] * absmax2 + offset,
 * x = nf4[code] * absmax.
 *
 * Storage (exact, from lp_nf4_bytes): ceil(n/2) code bytes + nblocks bytes of
 * qabsmax + 4 * ceil(nblocks/256) bytes of absmax2, i.e. 0.5 + 1/64 + 1/4096
 * = 0.51587 byte per parameter (0.5625 without double quantisation), all
 * LP_MEM_WEIGHTS. Error bounds per element: |x - deq(q(x))| <=
 * LP_NF4_MAX_HALF_GAP * absmax (0.1519 * absmax: half of the widest code gap,
 * -1 .. -0.696) plus, with double quantisation, |absmax - deq(absmax)| <=
 * lp_nf4_dq_max_half_gap() * absmax2 (0.00703 * the largest deviation of a
 * 256-block's absmax from their mean).
 *
 *   lp_nf4 *q;
 *   LP_TRY(lp_nf4_quantize(&q, W, OC, C, 1));            // W (OC,C) fp32 -> NF4, double quant
 *   lp_nf4_linear_forward(y, x, q, bias, N, C, OC);      // y (N,OC) = x @ deq(W)^T + b
 *   lp_nf4_linear_backward(dx, dy, q, N, C, OC);         // dx (N,C) += dy @ deq(W)
 *   printf("%zu bytes\n", lp_nf4_bytes(q));
 *   lp_nf4_free(q);
 *
 * The matmuls never hold the full fp32 W: rows of W are dequantised a tile at
 * a time (lp_nf4_tile_rows rows, about LP_NF4_TILE_BYTES, LP_MEM_SCRATCH) and
 * multiplied with OpenBLAS sgemm. The tile is dequantised on the calling
 * thread: an OpenMP team there would fight OpenBLAS's spinning worker threads
 * (measured: 10x slower on 2 cores). See bench/bench_nf4.c.
 */
#ifndef LEANPROP_NF4_H
#define LEANPROP_NF4_H

#include <stddef.h>
#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LP_NF4_BLOCK 64         /* elements per absmax block */
#define LP_NF4_DQ_BLOCK 256     /* absmax values per double-quantisation block */
#define LP_NF4_TILE_BYTES (2048u * 1024u)  /* target size of one dequantised tile */
/* Half of the widest gap between neighbouring NF4 codes ((1 - 0.6961928) / 2). */
#define LP_NF4_MAX_HALF_GAP 0.15190359950065613

typedef struct lp_nf4 {
    int64_t OC, C;          /* matrix shape */
    int64_t n;              /* OC * C elements */
    int64_t nblocks;        /* ceil(n / 64) */
    int64_t ndq_blocks;     /* ceil(nblocks / 256) with double quantisation, else 0 */
    int double_quant;
    uint8_t *codes;         /* ceil(n/2) bytes, high nibble first */
    float *absmax;          /* (nblocks) without double quantisation, else NULL */
    uint8_t *qabsmax;       /* (nblocks) indices into lp_nf4_dq_codebook(), else NULL */
    float *absmax2;         /* (ndq_blocks) scale of each 256-block of qabsmax, else NULL */
    float absmax_offset;    /* mean of the absmax values (double quantisation) */
} lp_nf4;

/* The 16 NF4 values, ascending, -1 .. 1 with exact 0 at index 7. */
const float *lp_nf4_codebook(void);
/* bitsandbytes' signed dynamic 8-bit map: 256 values ascending, -0.99297 .. 1
 * (254 means of 7 decades, both signs, plus 0 and 1). */
const float *lp_nf4_dq_codebook(void);
/* Largest half gap between neighbouring values of the dynamic map (~0.00703). */
double lp_nf4_dq_max_half_gap(void);
/* Index of the NF4 code nearest to v (v is clamped to [-1, 1]; ties go to the
 * lower code, NaN to 7 = 0.0). */
uint8_t lp_nf4_encode(float v);

/* W (OC,C) fp32 -> new NF4 tensor (LP_MEM_WEIGHTS). Non-finite values are
 * LP_ERR_NUMERIC (index named); OC, C must be > 0 and fit in int. */
lp_status lp_nf4_quantize(lp_nf4 **out, const float *W, int64_t OC, int64_t C, int double_quant);
void lp_nf4_free(lp_nf4 *q);
/* Exact bytes of its LP_MEM_WEIGHTS buffers (codes, absmax or qabsmax + absmax2). */
size_t lp_nf4_bytes(const lp_nf4 *q);
/* Same, predicted from the shape (for memory planning). */
size_t lp_nf4_bytes_for(int64_t OC, int64_t C, int double_quant);

/* Dequantised absmax of block b (0 for a NULL q or b out of range). */
float lp_nf4_block_absmax(const lp_nf4 *q, int64_t b);
/* q -> rows [r0, r0+nr) of deq(W): out (nr, C). */
lp_status lp_nf4_dequantize_rows(float *out, const lp_nf4 *q, int64_t r0, int64_t nr);
/* q -> out (OC, C) = deq(W). */
lp_status lp_nf4_dequantize(float *out, const lp_nf4 *q);

/* Rows of W dequantised per tile by the matmuls, and the scratch bytes that takes. */
int64_t lp_nf4_tile_rows(int64_t OC, int64_t C);
size_t lp_nf4_scratch_bytes(int64_t OC, int64_t C);

/* inp (N,C), W (OC,C) NF4, b (OC) or NULL -> out (N,OC) = inp @ deq(W)^T + b.
 * C and OC must equal the tensor's shape. */
lp_status lp_nf4_linear_forward(float *out, const float *inp, const lp_nf4 *W, const float *b, int64_t N,
                                int64_t C, int64_t OC);
/* dout (N,OC) -> dinp (N,C) += dout @ deq(W). No weight gradient: NF4 weights are frozen. */
lp_status lp_nf4_linear_backward(float *dinp, const float *dout, const lp_nf4 *W, int64_t N, int64_t C,
                                 int64_t OC);

#ifdef __cplusplus
}
#endif
#endif
