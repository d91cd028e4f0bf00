/* leanprop/kernels/linear.h: GEMM, linear layers, bias and residual adds.
 *
 * All buffers are row-major float. Dimensions are int64_t and validated
 * (> 0, product fits); a bad argument returns LP_ERR_INVALID_ARG with a
 * message, never a crash.
 *
 * Gradient contract (all kernels in leanprop/kernels): a backward ADDS (+=)
 * into every gradient buffer it is given, input and parameter gradients
 * alike, so contributions from several uses sum without extra buffers; zero
 * them before the first backward of a step. A NULL gradient pointer means
 * "not needed" and its work is skipped (frozen weights: pass dW = db = NULL).
 *
 *   // y = x @ W^T + b with W stored as torch does, (OC, C)
 *   lp_linear_forward(y, x, W, b, N, C, OC);
 *   lp_linear_backward(dx, dW, db, dy, x, W, N, C, OC);   // dx, dW, db +=
 *   lp_sgemm(Cm, 0, A, 0, B, 0, M, N, K, LP_NOTRANS, LP_TRANS, 1.0f, 0.0f); // Cm = A @ B^T
 */
#ifndef LEANPROP_KERNELS_LINEAR_H
#define LEANPROP_KERNELS_LINEAR_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { LP_NOTRANS = 0, LP_TRANS = 1 } lp_transpose;

/* C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C, through OpenBLAS.
 * op(A) = A (M,K) or, with LP_TRANS, A stored (K,M); likewise B. Leading
 * dimensions (row strides) lda, ldb, ldc; 0 means packed (the stored row
 * length). beta = 0 overwrites C (its old contents are never read), beta = 1
 * accumulates. M, N, K and the leading dimensions must fit in int. */
lp_status lp_sgemm(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb,
                   int64_t M, int64_t N, int64_t K, lp_transpose trans_a, lp_transpose trans_b,
                   float alpha, float beta);

/* inp (N,C), W (OC,C), b (OC) or NULL -> out (N,OC) = inp @ W^T + b */
lp_status lp_linear_forward(float *out, const float *inp, const float *W, const float *b,
                            int64_t N, int64_t C, int64_t OC);

/* dout (N,OC) -> dinp (N,C) += dout @ W, dW (OC,C) += dout^T @ inp, db (OC) += sum_n dout.
 * Each gradient may be NULL (skipped); inp may be NULL when dW is, W when dinp is. */
lp_status lp_linear_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                             const float *W, int64_t N, int64_t C, int64_t OC);

/* out (N,C) += b (C) broadcast over rows */
lp_status lp_bias_forward(float *out, const float *b, int64_t N, int64_t C);

/* dout (N,C) -> db (C) += sum over rows of dout */
lp_status lp_bias_backward(float *db, const float *dout, int64_t N, int64_t C);

/* a (n), b (n) -> out (n) = a + b; out may alias a or b */
lp_status lp_residual_forward(float *out, const float *a, const float *b, int64_t n);

/* dout (n) -> da (n) += dout, db (n) += dout; either may be NULL */
lp_status lp_residual_backward(float *da, float *db, const float *dout, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
