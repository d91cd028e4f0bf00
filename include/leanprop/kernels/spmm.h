/* leanprop/kernels/spmm.h: sparse (CSR) x dense products and row L2 normalisation.
 *
 * One SpMM kernel serves graph propagation and sparse features alike:
 *   y_i = beta * y_i + r_i * sum_{e in row i} v_e * c_{j(e)} * x_{j(e)} + s_i * x_i
 * with optional value, row-scale, column-scale and self (diagonal) vectors.
 *
 *   // GCN propagation with implicit self loops: y = D^-1/2 (A + I) D^-1/2 h
 *   lp_spmm(y, g->indptr, g->indices, NULL, g->gcn_dinv, g->gcn_dinv, self, h, N, N, d, 0.0f);
 *   // its transpose (backward) runs on g->t_indptr/t_indices with row and column scales swapped
 *   // sparse features: y (N,D) = X (N,F) @ W (F,D);  dW (F,D) += X^T @ dy via X's transpose (CSC)
 *   lp_spmm(y, X->indptr, X->indices, X->values, NULL, NULL, NULL, W, N, F, D, 0.0f);
 *   lp_spmm(dW, X->t_indptr, X->t_indices, X->t_values, NULL, NULL, NULL, dy, F, N, D, 1.0f);
 *
 * Rows are distributed over OpenMP threads (no atomics: the transpose is a
 * second CSR, never a scatter). Every output row is written by one thread.
 */
#ifndef LEANPROP_KERNELS_SPMM_H
#define LEANPROP_KERNELS_SPMM_H

#include <stdint.h>

#include "leanprop/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A (n_rows, n_cols) in CSR (indptr (n_rows+1), indices), values (nnz) or NULL (= 1),
 * row_scale (n_rows) / col_scale (n_cols) / self_scale (n_rows, needs n_rows == n_cols)
 * each NULL (= 1, 1, 0), x (n_cols, d) -> y (n_rows, d) = beta*y + diag(r) A diag(c) x + diag(s) x.
 * beta 0 overwrites y without reading it. y must not alias x. */
lp_status lp_spmm(float *y, const int64_t *indptr, const int32_t *indices, const float *values,
                  const float *row_scale, const float *col_scale, const float *self_scale, const float *x,
                  int64_t n_rows, int64_t n_cols, int64_t d, float beta);

/* x (N,D) -> y (N,D) = x / (||x_row||_2 + eps); saves norm (N) (may be NULL). y may alias x. */
lp_status lp_rownorm_forward(float *y, float *norm, const float *x, int64_t N, int64_t D, float eps);

/* dy (N,D), y (N,D) (the forward's output), norm (N) -> dx (N,D) +=
 *   dy / (n + eps) - y * (y . dy) / n     (the second term is 0 for a zero row, as torch gives). */
lp_status lp_rownorm_backward(float *dx, const float *dy, const float *y, const float *norm, int64_t N, int64_t D,
                              float eps);

#ifdef __cplusplus
}
#endif
#endif
