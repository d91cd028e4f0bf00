/* GATConv (PyG): h = X W split into H heads of C; for edge j -> i (and the implicit
 * self loop i -> i) e_ij = LeakyReLU(<h_j, att_src> + <h_i, att_dst>), alpha =
 * softmax over i's incoming edges, out_i = sum_j alpha_ij h_j; heads concatenated
 * (or averaged), then bias.
 *
 * Saved for backward: h (N, H*C) and, per node and head, the two attention
 * logit parts and the softmax log-normaliser (lse): alpha is recomputed from
 * them, never stored per edge. Backward runs twice over the edges without
 * atomics: over targets (softmax statistics, d att_dst) and over sources
 * through the transpose (dh, d att_src). */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "leanprop/kernels/linear.h"
#include "nn/gnn_internal.h"

static inline float lrelu(float v, float slope) { return v > 0 ? v : v * slope; }

static int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* 1 + the largest in-degree: the length of a row's softmax (self loop included) */
static int64_t row_len_max(const lp_graph *g)
{
    int64_t m = 0;
    for (int64_t i = 0; i < g->n_nodes; i++) m = g->indptr[i + 1] - g->indptr[i] > m ? g->indptr[i + 1] - g->indptr[i] : m;
    return m + 1;
}

static inline float dot(const float *a, const float *b, int64_t n)
{
    float s = 0;
    for (int64_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

/* (re)allocate the saved buffers for N rows in category cat */
static lp_status get_buffers(lp_gnn_layer *l, int64_t N, int save, float **h, float **as, float **ad, float **lse)
{
    int64_t H = l->p[1].rows, HC = l->p[0].cols;
    if (save) {
        if (l->h && l->saved_rows != N) lp_gnn_layer_release(l);
        if (!l->h) {
            l->h = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(N * HC), sizeof(float));
            l->a_src = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(N * H), sizeof(float));
            l->a_dst = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(N * H), sizeof(float));
            l->lse = lp_alloc_array(LP_MEM_ACTIVATIONS, (size_t)(N * H), sizeof(float));
            l->saved_rows = N;
            if (!l->h || !l->a_src || !l->a_dst || !l->lse) {
                lp_gnn_layer_release(l);
                return lp_error_context(LP_ERR_NOMEM, "GAT saved activations");
            }
        }
        *h = l->h; *as = l->a_src; *ad = l->a_dst; *lse = l->lse;
        return LP_OK;
    }
    *h = lp_gnn__scratch_nz(N * HC);
    *as = lp_gnn__scratch_nz(N * H);
    *ad = lp_gnn__scratch_nz(N * H);
    *lse = lp_gnn__scratch_nz(N * H);
    if (!*h || !*as || !*ad || !*lse) {
        lp_gnn__scratch_free(*h); lp_gnn__scratch_free(*as); lp_gnn__scratch_free(*ad); lp_gnn__scratch_free(*lse);
        return lp_error_context(LP_ERR_NOMEM, "GAT forward");
    }
    return LP_OK;
}

lp_status lp_gat_forward(lp_gnn_layer *l, float *y, const lp_gnn_input *x, const lp_graph *g, int save)
{
    int64_t N = g->n_nodes, H = l->p[1].rows, C = l->p[1].cols, HC = H * C, D = l->out;
    int concat = l->o.concat;
    float slope = l->o.negative_slope;
    float *h, *as, *ad, *lse;
    LP_TRY(get_buffers(l, N, save, &h, &as, &ad, &lse));
    lp_status st = lp_gnn__xw(h, x, l->p[0].data, HC, 0.0f);
    if (st != LP_OK) goto done;
    const float *att_s = l->p[1].data, *att_d = l->p[2].data;
    const int64_t *ip = g->indptr;
    const int32_t *ix = g->indices;
#pragma omp parallel for schedule(static) if (N * HC >= 65536)
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < H; k++) {
            as[n * H + k] = dot(h + n * HC + k * C, att_s + k * C, C);
            ad[n * H + k] = dot(h + n * HC + k * C, att_d + k * C, C);
        }
    /* per-thread row buffer of softmax terms: each exp is computed once */
    int64_t R = row_len_max(g);
    float *tmp = lp_gnn__scratch_nz((int64_t)max_threads() * R);
    if (!tmp) { st = lp_error_context(LP_ERR_NOMEM, "GAT forward"); goto done; }
#pragma omp parallel for schedule(dynamic, 32) if ((ip[N] + N) * HC >= 65536)
    for (int64_t i = 0; i < N; i++) {
        float *yi = y + i * D, *ev = tmp + (int64_t)thread_id() * R;
        int64_t deg = ip[i + 1] - ip[i];
        memset(yi, 0, (size_t)D * sizeof(float));
        for (int64_t k = 0; k < H; k++) {
            float adi = ad[i * H + k];
            ev[0] = lrelu(as[i * H + k] + adi, slope); /* q = 0: the self loop; q > 0: edge ip[i] + q - 1 */
            float m = ev[0];
            for (int64_t q = 1; q <= deg; q++) {
                ev[q] = lrelu(as[ix[ip[i] + q - 1] * H + k] + adi, slope);
                m = ev[q] > m ? ev[q] : m;
            }
            float sum = 0;
            for (int64_t q = 0; q <= deg; q++) { ev[q] = expf(ev[q] - m); sum += ev[q]; }
            lse[i * H + k] = m + logf(sum);
            float *o = concat ? yi + k * C : yi;
            float scale = (concat ? 1.0f : 1.0f / (float)H) / sum;
            for (int64_t q = 0; q <= deg; q++) {
                int64_t j = q == 0 ? i : ix[ip[i] + q - 1];
                float a = ev[q] * scale;
                const float *hj = h + j * HC + k * C;
                for (int64_t c = 0; c < C; c++) o[c] += a * hj[c];
            }
        }
    }
    lp_gnn__scratch_free(tmp);
    st = lp_bias_forward(y, l->p[3].data, N, D);
done:
    if (!save) { lp_gnn__scratch_free(h); lp_gnn__scratch_free(as); lp_gnn__scratch_free(ad); lp_gnn__scratch_free(lse); }
    return st;
}

lp_status lp_gat_backward(lp_gnn_layer *l, float *dx, const float *dy)
{
    const lp_graph *g = l->g;
    int64_t N = g->n_nodes, H = l->p[1].rows, C = l->p[1].cols, HC = H * C, D = l->out;
    int concat = l->o.concat;
    float slope = l->o.negative_slope, inv_h = concat ? 1.0f : 1.0f / (float)H;
    const float *h = l->h, *as = l->a_src, *ad = l->a_dst, *lse = l->lse;
    if (!h || l->saved_rows != N) return lp_error(LP_ERR_INVALID_ARG, "GAT backward: saved activations missing");
    LP_TRY(lp_bias_backward(l->p[3].grad, dy, N, D));
    float *S = lp_gnn__scratch_nz(N * H), *dad = lp_gnn__scratch_nz(N * H), *das = lp_gnn__scratch_nz(N * H);
    float *dh = lp_gnn__scratch(N * HC);
    lp_status st = LP_OK;
    if (!S || !dad || !das || !dh) { st = lp_error_context(LP_ERR_NOMEM, "GAT backward"); goto done; }
    const int64_t *ip = g->indptr, *tp = g->t_indptr;
    const int32_t *ix = g->indices, *tx = g->t_indices;
    /* dOut of target i, head k: dy row (concat) or dy / H (average) */
#define DOUT(i, k) (dy + (i) * D + (concat ? (k) * C : 0))
    /* pass 1, over targets: S_i = sum_j a_ij <dOut_i, h_j>, d a_dst_i = sum_j dpre_ij
     * (per-thread row buffers: each a_ij and <dOut_i, h_j> computed once) */
    int64_t R = row_len_max(g);
    float *tmp = lp_gnn__scratch_nz((int64_t)max_threads() * 3 * R);
    if (!tmp) { st = lp_error_context(LP_ERR_NOMEM, "GAT backward"); goto done; }
#pragma omp parallel for schedule(dynamic, 32) if ((ip[N] + N) * HC >= 65536)
    for (int64_t i = 0; i < N; i++) {
        float *ta = tmp + (int64_t)thread_id() * 3 * R, *tda = ta + R, *tpre = tda + R;
        int64_t deg = ip[i + 1] - ip[i];
        for (int64_t k = 0; k < H; k++) {
            float adi = ad[i * H + k], L = lse[i * H + k];
            const float *go = DOUT(i, k);
            float s = 0;
            for (int64_t q = 0; q <= deg; q++) {
                int64_t j = q == 0 ? i : ix[ip[i] + q - 1];
                tpre[q] = as[j * H + k] + adi;
                ta[q] = expf(lrelu(tpre[q], slope) - L);
                tda[q] = inv_h * dot(go, h + j * HC + k * C, C);
                s += ta[q] * tda[q];
            }
            S[i * H + k] = s;
            float sd = 0;
            for (int64_t q = 0; q <= deg; q++) sd += ta[q] * (tda[q] - s) * (tpre[q] > 0 ? 1.0f : slope);
            dad[i * H + k] = sd;
        }
    }
    lp_gnn__scratch_free(tmp);
    /* pass 2, over sources j (transpose: targets i of j, plus the self loop) */
#pragma omp parallel for schedule(dynamic, 32) if ((ip[N] + N) * HC >= 65536)
    for (int64_t j = 0; j < N; j++)
        for (int64_t k = 0; k < H; k++) {
            float asj = as[j * H + k];
            const float *hj = h + j * HC + k * C;
            float *dhj = dh + j * HC + k * C;
            float sd = 0;
            for (int64_t e = tp[j] - 1; e < tp[j + 1]; e++) {
                int64_t i = e < tp[j] ? j : tx[e];
                float pre = asj + ad[i * H + k];
                float a = expf(lrelu(pre, slope) - lse[i * H + k]);
                const float *go = DOUT(i, k);
                float da = inv_h * dot(go, hj, C);
                sd += a * (da - S[i * H + k]) * (pre > 0 ? 1.0f : slope);
                float w = a * inv_h;
                for (int64_t c = 0; c < C; c++) dhj[c] += w * go[c];
            }
            das[j * H + k] = sd;
        }
#undef DOUT
    /* the attention logits a_src = <h, att_src>, a_dst = <h, att_dst> */
    {
        const float *att_s = l->p[1].data, *att_d = l->p[2].data;
        float *gs = l->p[1].grad, *gd = l->p[2].grad;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < H; k++) {
                float s = das[n * H + k], d = dad[n * H + k];
                const float *hn = h + n * HC + k * C;
                float *dhn = dh + n * HC + k * C;
                for (int64_t c = 0; c < C; c++) {
                    gs[k * C + c] += s * hn[c];
                    gd[k * C + c] += d * hn[c];
                    dhn[c] += s * att_s[k * C + c] + d * att_d[k * C + c];
                }
            }
    }
    st = lp_gnn__xtg(l->p[0].grad, &l->x, dh, HC);
    if (st == LP_OK && dx) st = lp_gnn__gwt(dx, dh, l->p[0].data, N, l->in, HC);
done:
    lp_gnn__scratch_free(S); lp_gnn__scratch_free(dad); lp_gnn__scratch_free(das); lp_gnn__scratch_free(dh);
    return st;
}
