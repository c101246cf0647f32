/* lstm_edge.c: the LSTM step of lstm-edge models in portable C99 (see lstm_edge.h).
 *
 * Read top to bottom: matrix kernels, the cell update, the input and output stages of the
 * two tasks, the batched step (shared by both), then the one-stream wrappers. Nothing here
 * allocates or keeps state between calls.
 *
 * Why the kernels look the way they do: a row-dot loop (sum_j W[r][j] x[j]) is a float
 * reduction, which a compiler may not reorder without -ffast-math, so it runs scalar. The
 * weights are stored input-major instead (in panels of LSTM_EDGE_PANEL outputs), and the
 * kernels add one input's contribution to many outputs at a time: every output is
 * independent, so -O2/-O3 vectorize the inner loop as written. On targets with vector
 * registers a tile of lanes x 32 outputs keeps its sums in registers over all the inputs
 * (a register-blocked matrix product, reading a panel's weights contiguously); elsewhere
 * a pass adds eight inputs at a time to y in memory. On such targets an int8 matrix is
 * computed as the spec writes it, on dequantized weights w = q * scale with the float32
 * tiles' arithmetic: a single step dequantizes each weight as it reads it, batches run the
 * float32 tiles over a dequantized copy made at start-up (lstm_edge_dequantized_panels)
 * or over blocks dequantized on the fly; the results are the same bits either way.
 */
#include "lstm_edge.h"

#include <math.h>
#include <string.h>

/* ---- matrix kernels --------------------------------------------------------------------- */

/* Lanes: the streams of a batch, or the time steps of one stream's run (the input
 * projections and the head of a prefill chunk), each with its own x and y. A pass adds
 * eight inputs' contributions to the outputs of one panel (y is read and written once per
 * eight inputs); four lanes at a time share every weight load. Every output sums its
 * inputs in the same order and grouping whatever the number of lanes, so a batch, a
 * prefill chunk and single steps give bit-identical results. The passes run where the
 * target has no register tiles (microcontrollers; see LSTM_EDGE_TILES), and there an int8
 * matrix scales each group of eight inputs' sum by its row scale: one multiply per eight
 * weights (hosts dequantize every weight, see the int8 kernels below). */
#define LANES 4
#define PANEL LSTM_EDGE_PANEL

/* a * b + c: one fused multiply-add (one rounding) where the target has a fast one, else
 * a multiply and an add. Spelled out rather than left to -ffp-contract, which a compiler
 * applies to some vectorized loops and not to others (GCC 12 fused a tile of four lanes
 * and not its one-lane twin): every kernel must round alike for batches, prefill chunks
 * and single steps to stay bit-identical. */
#if defined(FP_FAST_FMAF)
#define MADD(a, b, c) fmaf(a, b, c)
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* One pass: inputs j .. j+7 (weight rows w[0..7], type T) over the n outputs of four lanes
 * y0..y3 (or of one lane, y0), lane l's inputs in c[l][0..7]; ADD adds the eight
 * products to y (float32: one by one; int8: their sum times the row scale). Functions
 * with restrict parameters, so compilers vectorize them. */
#define W8(T) const T *restrict w0, const T *restrict w1, const T *restrict w2,                \
              const T *restrict w3, const T *restrict w4, const T *restrict w5,                \
              const T *restrict w6, const T *restrict w7
#define LANE(y, l)                                                                           \
    y[r] = ADD(y[r], c[l][0], u0, c[l][1], u1, c[l][2], u2, c[l][3], u3, c[l][4], u4, c[l][5],  \
               u5, c[l][6], u6, c[l][7], u7)
#define LOAD8                                                                                \
    const float u0 = (float)w0[r], u1 = (float)w1[r], u2 = (float)w2[r], u3 = (float)w3[r];   \
    const float u4 = (float)w4[r], u5 = (float)w5[r], u6 = (float)w6[r], u7 = (float)w7[r]
#define DEFINE_PASSES(SUFFIX, T)                                                             \
    static void pass4_##SUFFIX(int32_t n, W8(T), const float *restrict scale,                \
                               const float c[LANES][8], float *restrict y0,                  \
                               float *restrict y1, float *restrict y2, float *restrict y3)   \
    {                                                                                        \
        int32_t r;                                                                           \
        (void)scale;                                                                         \
        for (r = 0; r < n; ++r) {                                                            \
            LOAD8;                                                                           \
            LANE(y0, 0);                                                                     \
            LANE(y1, 1);                                                                     \
            LANE(y2, 2);                                                                     \
            LANE(y3, 3);                                                                     \
        }                                                                                    \
    }                                                                                        \
    static void pass1_##SUFFIX(int32_t n, W8(T), const float *restrict scale,                \
                               const float c[1][8], float *restrict y0)                      \
    {                                                                                        \
        int32_t r;                                                                           \
        (void)scale;                                                                         \
        for (r = 0; r < n; ++r) {                                                            \
            LOAD8;                                                                           \
            LANE(y0, 0);                                                                     \
        }                                                                                    \
    }
#define ADD(y, a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7)               \
    MADD(a7, b7, MADD(a6, b6, MADD(a5, b5, MADD(a4, b4,                                      \
        MADD(a3, b3, MADD(a2, b2, MADD(a1, b1, MADD(a0, b0, y))))))))
DEFINE_PASSES(f32, float)
#undef ADD
#define ADD(y, a0, b0, a1, b1, a2, b2, a3, b3, a4, b4, a5, b5, a6, b6, a7, b7)               \
    MADD(scale[r], MADD(a7, b7, MADD(a6, b6, MADD(a5, b5, MADD(a4, b4,                       \
        MADD(a3, b3, MADD(a2, b2, MADD(a1, b1, (a0) * (b0)))))))), y)
DEFINE_PASSES(i8, int8_t)
#undef ADD

/* y[i] += M x[i] for nb lanes in passes of eight inputs: each pass runs over every panel
 * of M (see lstm_edge_matrix: a float32 matrix in panels of m->panel outputs, panel p's
 * weights [cols][w] input-major at p * panel * cols; panel 0 and an int8 matrix are one
 * panel). An int8 matrix's int8 weights, even when it carries a dequantized copy: a
 * pass's results do not depend on what the caller computed at start-up. */
static void gemm_passes(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                        float *const *y)
{
    const size_t cols = (size_t)m->cols;
    const int32_t panel = m->q == NULL && m->panel > 0 ? m->panel : m->rows;
    int32_t i, j, k, p0;
    for (j = 0; j < m->cols; j += 8) {
        const int32_t g = m->cols - j < 8 ? m->cols - j : 8; /* inputs in this pass */
        for (i = 0; i < nb; i += i + LANES <= nb ? LANES : 1) {
            const int32_t lanes = i + LANES <= nb ? LANES : 1, more = lanes > 1;
            float a[LANES][8] = {{0.0f}};
            for (k = 0; k < lanes * 8; ++k) {
                a[k / 8][k % 8] = k % 8 < g ? x[i + k / 8][j + k % 8] : 0.0f;
            }
            for (p0 = 0; p0 < m->rows; p0 += panel) {
                const int32_t wp = m->rows - p0 < panel ? m->rows - p0 : panel;
                const size_t ld = (size_t)wp, base = (size_t)p0 * cols + (size_t)j * ld;
                const float *const scale = m->scale != NULL ? m->scale + p0 : NULL;
                float *y0 = y[i] + p0, *y1 = y[i + more] + p0, *y2 = y[i + 2 * more] + p0,
                      *y3 = y[i + 3 * more] + p0;
                size_t d[8]; /* a short pass reads input j's weights for its missing inputs,
                                times a zero input */
                for (k = 0; k < 8; ++k) {
                    d[k] = base + (k < g ? (size_t)k * ld : 0);
                }
                if (m->q == NULL) {
                    const float *w = m->f32;
                    if (lanes == LANES) {
                        pass4_f32(wp, w + d[0], w + d[1], w + d[2], w + d[3], w + d[4],
                                  w + d[5], w + d[6], w + d[7], NULL, (const float(*)[8])a,
                                  y0, y1, y2, y3);
                    } else {
                        pass1_f32(wp, w + d[0], w + d[1], w + d[2], w + d[3], w + d[4],
                                  w + d[5], w + d[6], w + d[7], NULL, (const float(*)[8])a,
                                  y0);
                    }
                } else {
                    const int8_t *w = m->q;
                    if (lanes == LANES) {
                        pass4_i8(wp, w + d[0], w + d[1], w + d[2], w + d[3], w + d[4],
                                 w + d[5], w + d[6], w + d[7], scale, (const float(*)[8])a,
                                 y0, y1, y2, y3);
                    } else {
                        pass1_i8(wp, w + d[0], w + d[1], w + d[2], w + d[3], w + d[4],
                                 w + d[5], w + d[6], w + d[7], scale, (const float(*)[8])a,
                                 y0);
                    }
                }
            }
        }
    }
}

/* Register tiles (float32): NL lanes x NP * NC outputs summed in a local array that the
 * compiler keeps in vector registers for the whole pass over the inputs (the passes
 * above reload and store y every eight inputs). Each output still adds its inputs one by
 * one in input order, starting from y, exactly as the passes do, so tiles and passes give
 * bit-identical results and a lane's outputs never depend on how lanes are grouped. A
 * tile reads NP panels' weights at `w` (panel q at w + q * k_n * ld, input k of a panel
 * at k * ld) into outputs c0 .. c0 + NP * NC - 1, or NC columns of one panel (NP 1,
 * NC < ld). */
#define DEFINE_TILE(NAME, NL, NP, NC)                                                     \
    static void NAME(int32_t k_n, size_t ld, const float *restrict w, size_t c0,                 \
                     const float *const *x, float *const *y)                                 \
    {                                                                                        \
        const size_t pw = (size_t)k_n * ld; /* weights per panel */                        \
        float acc[NL][NP][NC];                                                               \
        int32_t k, l, q, c;                                                                  \
        for (l = 0; l < NL; ++l) {                                                           \
            for (q = 0; q < NP; ++q) {                                                       \
                for (c = 0; c < NC; ++c) {                                                   \
                    acc[l][q][c] = y[l][c0 + (size_t)(q * NC + c)];                          \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        for (k = 0; k < k_n; ++k) {                                                          \
            for (l = 0; l < NL; ++l) {                                                       \
                const float xv = x[l][k];                                                    \
                for (q = 0; q < NP; ++q) {                                                   \
                    const float *restrict wk = w + (size_t)q * pw + (size_t)k * ld;              \
                    for (c = 0; c < NC; ++c) {                                               \
                        acc[l][q][c] = MADD(xv, wk[c], acc[l][q][c]);                        \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        for (l = 0; l < NL; ++l) {                                                           \
            for (q = 0; q < NP; ++q) {                                                       \
                for (c = 0; c < NC; ++c) {                                                   \
                    y[l][c0 + (size_t)(q * NC + c)] = acc[l][q][c];                          \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }
DEFINE_TILE(tile8, 8, 1, PANEL)
DEFINE_TILE(tile4, 4, 1, PANEL)
DEFINE_TILE(tile1, 1, 1, PANEL)
DEFINE_TILE(tile1x4, 1, 4, PANEL)
DEFINE_TILE(narrow4, 4, 1, 8)
DEFINE_TILE(narrow1, 1, 1, 8)
DEFINE_TILE(col4, 4, 1, 1)
DEFINE_TILE(col1, 1, 1, 1)

/* y[i][c0 ..] += P x[i] for nb lanes, P one panel of ld <= PANEL outputs by k_n inputs at
 * w ([k_n][ld]). A full panel: eight lanes at a time (the panel, k_n x 128 bytes, stays in
 * L1 for the next eight), then four, then one; a narrower one in columns of eight, then
 * one. */
static void panel_tiles(int32_t k_n, size_t ld, const float *w, size_t c0, int32_t nb,
                        const float *const *x, float *const *y)
{
    size_t c;
    int32_t i;
    if (ld == PANEL) {
        for (i = 0; i + 8 <= nb; i += 8) {
            tile8(k_n, PANEL, w, c0, x + i, y + i);
        }
        for (; i + 4 <= nb; i += 4) {
            tile4(k_n, PANEL, w, c0, x + i, y + i);
        }
        for (; i < nb; ++i) {
            tile1(k_n, PANEL, w, c0, x + i, y + i);
        }
        return;
    }
    for (c = 0; c + 8 <= ld; c += 8) {
        for (i = 0; i + 4 <= nb; i += 4) {
            narrow4(k_n, ld, w + c, c0 + c, x + i, y + i);
        }
        for (; i < nb; ++i) {
            narrow1(k_n, ld, w + c, c0 + c, x + i, y + i);
        }
    }
    for (; c < ld; ++c) {
        for (i = 0; i + 4 <= nb; i += 4) {
            col4(k_n, ld, w + c, c0 + c, x + i, y + i);
        }
        for (; i < nb; ++i) {
            col1(k_n, ld, w + c, c0 + c, x + i, y + i);
        }
    }
}

/* y[i] += M x[i] for nb lanes of a matrix in float32 panels of PANEL outputs (its own
 * weights, or an int8 matrix's dequantized copy) in register tiles, panel by panel; a
 * lone lane takes four panels at a time (enough independent sums to keep the FMA units
 * busy). */
static void gemm_tiles(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                       float *const *y)
{
    const size_t rows = (size_t)m->rows, k_n_s = (size_t)m->cols;
    const size_t full = rows - rows % PANEL; /* outputs in full panels */
    size_t c0 = 0;
    if (nb == 1) {
        for (; c0 + 4 * PANEL <= full; c0 += 4 * PANEL) {
            tile1x4(m->cols, PANEL, m->f32 + c0 * k_n_s, c0, x, y);
        }
    }
    for (; c0 < rows; c0 += PANEL) {
        const size_t ld = rows - c0 < PANEL ? rows - c0 : PANEL;
        panel_tiles(m->cols, ld, m->f32 + c0 * k_n_s, c0, nb, x, y);
    }
}

/* The host arithmetic of an int8 matrix is the spec's: the weight is w = (float)q *
 * scale[r], one float32 rounding (what the numpy reference and ONNX DequantizeLinear
 * compute), and every output adds x[j] * w in input order with the float32 tiles' MADD.
 * So an int8 output is bit-identical whichever kernel below runs, and equal to the float32
 * tiles over a dequantized copy of the matrix (lstm_edge_dequantized_panels). */

/* int8 tiles, for many lanes: a block of I8_BLOCK inputs x one panel's outputs is
 * dequantized once into a float buffer on the stack (in the float32 panel layout, 16 KB)
 * and the float32 tiles run every lane of the call over it. */
#define I8_BLOCK 128

static void gemm_i8_tiles(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                          float *const *y)
{
    float block[I8_BLOCK * PANEL + 16]; /* w, aligned to 64 bytes: whole-line vector loads */
    float *const w = block + (64 - (uintptr_t)block % 64) % 64 / sizeof(float);
    const float *xs[LSTM_EDGE_BATCH_BLOCK];
    const size_t rows = (size_t)m->rows;
    size_t c0, c;
    int32_t j0, k, i;
    for (c0 = 0; c0 < rows; c0 += PANEL) {
        const size_t ld = rows - c0 < PANEL ? rows - c0 : PANEL; /* outputs in this panel */
        const float *restrict scale = m->scale + c0;
        for (j0 = 0; j0 < m->cols; j0 += I8_BLOCK) {
            const int32_t kn = m->cols - j0 < I8_BLOCK ? m->cols - j0 : I8_BLOCK;
            for (k = 0; k < kn; ++k) {
                const int8_t *restrict q = m->q + (size_t)(j0 + k) * rows + c0;
                float *restrict wk = w + (size_t)k * ld;
                for (c = 0; c < ld; ++c) {
                    wk[c] = (float)q[c] * scale[c];
                }
            }
            for (i = 0; i < nb; ++i) {
                xs[i] = x[i] + j0;
            }
            panel_tiles(kn, ld, w, c0, nb, xs, y);
        }
    }
}

/* int8, one lane: NC outputs (at q, scale, y) summed in registers over all the inputs,
 * each weight dequantized as it is read (with one lane there is nothing to share a
 * dequantized block with; the int8 weights are a quarter of the float32 bytes to read). */
#define DEFINE_I8_ROWS(NAME, NC)                                                             \
    static void NAME(int32_t cols, size_t ld, const int8_t *restrict q,                      \
                     const float *restrict scale, const float *restrict x, float *restrict y) \
    {                                                                                        \
        float acc[NC], s[NC];                                                                \
        int32_t j, c;                                                                        \
        for (c = 0; c < NC; ++c) {                                                           \
            acc[c] = y[c];                                                                   \
            s[c] = scale[c];                                                                 \
        }                                                                                    \
        for (j = 0; j < cols; ++j) {                                                         \
            const int8_t *restrict qj = q + (size_t)j * ld;                                  \
            const float xj = x[j];                                                           \
            for (c = 0; c < NC; ++c) {                                                       \
                acc[c] = MADD(xj, (float)qj[c] * s[c], acc[c]);                              \
            }                                                                                \
        }                                                                                    \
        for (c = 0; c < NC; ++c) {                                                           \
            y[c] = acc[c];                                                                   \
        }                                                                                    \
    }
DEFINE_I8_ROWS(i8_rows128, 4 * PANEL)
DEFINE_I8_ROWS(i8_rows32, PANEL)
DEFINE_I8_ROWS(i8_rows1, 1)

/* y[i] += M x[i] for nb lanes of an int8 matrix, lane by lane: 128 outputs at a time,
 * then 32, then one. */
static void gemm_i8_rows(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                         float *const *y)
{
    const size_t rows = (size_t)m->rows;
    int32_t i;
    for (i = 0; i < nb; ++i) {
        size_t c0 = 0;
        for (; c0 + 4 * PANEL <= rows; c0 += 4 * PANEL) {
            i8_rows128(m->cols, rows, m->q + c0, m->scale + c0, x[i], y[i] + c0);
        }
        for (; c0 + PANEL <= rows; c0 += PANEL) {
            i8_rows32(m->cols, rows, m->q + c0, m->scale + c0, x[i], y[i] + c0);
        }
        for (; c0 < rows; ++c0) {
            i8_rows1(m->cols, rows, m->q + c0, m->scale + c0, x[i], y[i] + c0);
        }
    }
}

/* Register tiles where the target has vector registers to hold them; elsewhere (a
 * Cortex-M4 has 32 float registers and no vector unit, so a tile would live on the stack)
 * the passes, with their own int8 arithmetic (per group of eight inputs a sum, then times
 * the row scale: one multiply per eight weights instead of one per weight). Bit-identical
 * batches, prefills and single steps either way. */
#ifndef LSTM_EDGE_TILES
#if defined(__SSE2__) || defined(__ARM_NEON) || defined(__ALTIVEC__) || defined(__riscv_v)
#define LSTM_EDGE_TILES 1
#else
#define LSTM_EDGE_TILES 0
#endif
#endif

/* y[i] += M x[i] for nb lanes. On hosts an int8 matrix steps one lane with its int8
 * weights (a quarter of the bytes to read), and several lanes over its dequantized panels
 * when it carries them (lstm_edge_dequantized_panels), else over blocks dequantized on the
 * fly: the same numbers in the same order (above), so the choice is speed alone. `again`:
 * the caller runs one lane over M many times in a row (a prefill chunk's recurrence), so
 * M's panels stay in cache and the float32 tiles run them faster than one lane
 * dequantizes; a lone step reads every matrix once, from memory, and the int8 bytes win. */
static void gemm_add(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                     float *const *y, int again)
{
    const int panels = m->f32 != NULL && m->panel == PANEL;
    if (!LSTM_EDGE_TILES) {
        gemm_passes(m, nb, x, y);
    } else if (m->q != NULL && nb == 1 && !(again && panels)) {
        gemm_i8_rows(m, nb, x, y);
    } else if (panels) {
        gemm_tiles(m, nb, x, y);
    } else if (m->q != NULL) {
        gemm_i8_tiles(m, nb, x, y);
    } else {
        gemm_passes(m, nb, x, y);
    }
}

/* ---- the LSTM cell ---------------------------------------------------------------------- */

/* e^v in float32 without libm, so that the cell update vectorizes (glibc's expf is a call
 * per value: a quarter of a batched step, measured with perf): Cephes' expf, a range
 * reduction by ln 2 and a degree-6 polynomial, within 2 ulp of e^v. v is clamped to
 * [-87, 88] (the results stay normal floats: sigmoid and tanh saturate there to within
 * 1e-38); NaN in, NaN out. */
static inline float exp_(float v)
{
    const float x = v > 88.0f ? 88.0f : (v < -87.0f ? -87.0f : v); /* NaN stays NaN */
    const float xs = x == x ? x : 0.0f;
    /* k = round(xs / ln 2): adding and subtracting 1.5 * 2^23 rounds to an integer */
    const float k = (xs * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (xs - k * 0.693359375f) + k * 2.12194440e-4f; /* ln 2 in two parts */
    float p = 1.9875691500e-4f, scale;
    const int32_t bits = ((int32_t)k + 127) * 8388608; /* 2^k as float bits: k in [-126, 127] */
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    memcpy(&scale, &bits, sizeof(scale));
    return x == x ? p * scale : v;
}

static inline float sigmoid(float v) { return 1.0f / (1.0f + exp_(-v)); }

/* tanh through exp: within ~1e-7 absolute of tanh, saturating cleanly to +-1 (glibc's
 * tanhf goes through expm1f and cost 40% of a small model's step, measured with perf). */
static inline float tanh_(float v) { return 1.0f - 2.0f / (1.0f + exp_(2.0f * v)); }

/* ONNX LSTM update from pre-activation gates g [4H] in the order i, o, f, c:
 * C = f * C + i * tanh(g_c); H = o * tanh(C). h and c are updated in place. */
static void cell_update(int32_t hidden, const float *g, float *restrict h, float *restrict c)
{
    const float *restrict gi = g, *restrict go = g + hidden, *restrict gf = g + 2 * hidden,
                          *restrict gc = g + 3 * hidden;
    int32_t k;
    for (k = 0; k < hidden; ++k) {
        const float i = sigmoid(gi[k]);
        const float o = sigmoid(go[k]);
        const float f = sigmoid(gf[k]);
        const float cand = tanh_(gc[k]);
        const float cn = f * c[k] + i * cand;
        c[k] = cn;
        h[k] = o * tanh_(cn);
    }
}

/* ---- checks ----------------------------------------------------------------------------- */

/* Every size is computed in 64 bits: the dimensions are int32_t, so a product of two of
 * them cannot wrap a uint64_t; a product of more goes through mul_limit. */

/* *out = a * b if that is at most limit, else 0 (and *out untouched). */
static int mul_limit(uint64_t a, uint64_t b, uint64_t limit, uint64_t *out)
{
    if (a != 0 && b > limit / a) {
        return 0;
    }
    *out = a * b;
    return 1;
}

/* Largest element count of a float array the library may index: its bytes fit size_t. */
#define MAX_FLOATS ((uint64_t)SIZE_MAX / sizeof(float))

/* A stored array of `count` elements is exactly `rows * cols` long. */
static int count_ok(size_t count, int32_t rows, int32_t cols)
{
    return (uint64_t)count == (uint64_t)rows * (uint64_t)cols;
}

static int matrix_ok(const lstm_edge_matrix *m, int32_t rows, int32_t cols)
{
    if (m->rows != rows || m->cols != cols || !count_ok(m->n_values, rows, cols)) {
        return 0;
    }
    if (m->q == NULL) {
        return m->f32 != NULL && m->scale == NULL && m->n_scale == 0 &&
               (m->panel == 0 || m->panel == PANEL);
    }
    /* int8, and its dequantized panels when it carries them */
    return m->scale != NULL && count_ok(m->n_scale, rows, 1) &&
           m->panel == (m->f32 != NULL ? PANEL : 0);
}

static int affine_ok(const lstm_edge_affine *a, int32_t n)
{
    return a->scale != NULL && a->shift != NULL && count_ok(a->n_scale, n, 1) &&
           count_ok(a->n_shift, n, 1);
}

static int affine_empty(const lstm_edge_affine *a)
{
    return a->scale == NULL && a->shift == NULL && a->n_scale == 0 && a->n_shift == 0;
}

/* A forecast model's last_index: absent (level targets), or one feature column per target. */
static int last_index_ok(const lstm_edge_model *model)
{
    const lstm_edge_output_stage *o = &model->output;
    size_t k;
    if (o->last_index == NULL || o->n_last_index == 0) {
        return o->last_index == NULL && o->n_last_index == 0;
    }
    if (o->n_last_index != (size_t)model->output_size) {
        return 0;
    }
    for (k = 0; k < o->n_last_index; ++k) {
        if (o->last_index[k] < 0 || o->last_index[k] >= model->input_size) {
            return 0;
        }
    }
    return 1;
}

/* The highway is absent (all zero/NULL), or, for a forecast model, consistent: lags >= 1,
 * one output per model output, each reading a feature column, and its arrays as long as
 * those dimensions ask. The history (1 + lags * outputs floats) then fits size_t: lags *
 * outputs is less than the weight array's element count. */
static int highway_ok(const lstm_edge_model *model)
{
    const lstm_edge_highway *hw = &model->output.highway;
    size_t k;
    if (hw->lags == 0) {
        return hw->n_outputs == 0 && hw->select == NULL && hw->weight == NULL &&
               hw->bias == NULL && hw->n_select == 0 && hw->n_weight == 0 && hw->n_bias == 0;
    }
    if (model->task != LSTM_EDGE_TASK_FORECAST || hw->lags < 1 || hw->lags == INT32_MAX ||
        hw->n_outputs != model->output_size || hw->select == NULL || hw->weight == NULL ||
        hw->bias == NULL || !count_ok(hw->n_select, hw->n_outputs, 1) ||
        !count_ok(hw->n_weight, hw->n_outputs, hw->lags + 1) ||
        !count_ok(hw->n_bias, hw->n_outputs, 1)) {
        return 0;
    }
    for (k = 0; k < hw->n_select; ++k) {
        if (hw->select[k] < 0 || hw->select[k] >= model->input_size) {
            return 0;
        }
    }
    return 1;
}

/* The embedding input stage is set and consistent with its arrays: exactly one of the
 * float32 and the int8 (with scales) table. */
static int embedding_ok(const lstm_edge_model *model)
{
    const lstm_edge_embedding *emb = &model->input.embedding;
    if (emb->vocab_size < 1 || emb->embed_size < 1 || model->input_size != emb->embed_size ||
        !count_ok(emb->n_values, emb->vocab_size, emb->embed_size)) {
        return 0;
    }
    if (emb->f32 != NULL) {
        return emb->q == NULL && emb->scale == NULL && emb->n_scale == 0;
    }
    return emb->q != NULL && emb->scale != NULL && count_ok(emb->n_scale, emb->vocab_size, 1);
}

/* The input/output stage fields of the model's task are set and consistent with their
 * arrays; those of the other task are zero/NULL (so a struct filled for one task is never
 * half of the other). */
static int stages_ok(const lstm_edge_model *model)
{
    const lstm_edge_embedding *emb = &model->input.embedding;
    const lstm_edge_affine *in = &model->input.normalize;
    const lstm_edge_affine *out = &model->output.denormalize;
    const int no_embedding = emb->vocab_size == 0 && emb->embed_size == 0 && emb->f32 == NULL &&
                             emb->q == NULL && emb->scale == NULL && emb->n_values == 0 &&
                             emb->n_scale == 0;
    const int no_norm = affine_empty(in) && affine_empty(out) &&
                        model->output.last_index == NULL && model->output.n_last_index == 0;
    switch (model->task) {
    case LSTM_EDGE_TASK_CHAR_LM:
        return no_norm && model->output_size == emb->vocab_size && embedding_ok(model);
    case LSTM_EDGE_TASK_FORECAST:
        return no_embedding && affine_ok(in, model->input_size) &&
               affine_ok(out, model->output_size) && last_index_ok(model);
    case LSTM_EDGE_TASK_CLASSIFY: /* logits are the head's output: no output stage */
        if (!no_embedding) { /* token ids in through the embedding */
            return no_norm && embedding_ok(model);
        }
        return affine_ok(in, model->input_size) && affine_empty(out);
    }
    return 0; /* not an lstm_edge_task */
}

/* Scratch floats of one stream (8H + input) if the dimensions are positive and every size
 * derived from them fits: 8H + input in int32_t (the header's macro and the kernels' int32
 * indices), the scratch of LSTM_EDGE_BATCH_BLOCK streams and the state (L * H) in size_t
 * bytes. 0 otherwise. */
static uint64_t checked_scratch_per_stream(const lstm_edge_model *model)
{
    const int32_t hidden = model->hidden_size;
    const uint64_t per_stream = 8 * (uint64_t)hidden + (uint64_t)model->input_size;
    uint64_t n;
    if (hidden < 1 || model->input_size < 1 || model->output_size < 1 ||
        model->num_layers < 1) {
        return 0;
    }
    if (per_stream > INT32_MAX ||
        !mul_limit(per_stream, LSTM_EDGE_BATCH_BLOCK, MAX_FLOATS, &n) ||
        !mul_limit((uint64_t)model->num_layers, (uint64_t)hidden, MAX_FLOATS, &n)) {
        return 0;
    }
    return per_stream;
}

lstm_edge_status lstm_edge_check_model(const lstm_edge_model *model)
{
    int32_t l, hidden;
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    hidden = model->hidden_size;
    if (model->format_version != LSTM_EDGE_FORMAT_VERSION || model->input_size < 1 ||
        model->output_size < 1 || hidden < 1 || model->num_layers < 1) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    if (checked_scratch_per_stream(model) == 0) {
        return LSTM_EDGE_ERR_BAD_SIZE; /* so 4 * hidden below fits int32_t too */
    }
    if (model->layers == NULL || (uint64_t)model->n_layers_stored != (uint64_t)model->num_layers ||
        model->head_bias == NULL || !count_ok(model->n_head_bias, model->output_size, 1) ||
        !stages_ok(model) || !highway_ok(model) ||
        !matrix_ok(&model->head, model->output_size, hidden)) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    for (l = 0; l < model->num_layers; ++l) {
        const lstm_edge_layer *layer = &model->layers[l];
        const int32_t in = l == 0 ? model->input_size : hidden;
        if (!matrix_ok(&layer->w, 4 * hidden, in) || !matrix_ok(&layer->r, 4 * hidden, hidden) ||
            layer->bias == NULL || !count_ok(layer->n_bias, 4 * hidden, 1)) {
            return LSTM_EDGE_ERR_BAD_MODEL;
        }
    }
    if (model->token_gates != NULL
            ? model->input.embedding.vocab_size < 1 ||
                  !count_ok(model->n_token_gates, model->input.embedding.vocab_size, 4 * hidden)
            : model->n_token_gates != 0) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    return LSTM_EDGE_OK;
}

size_t lstm_edge_scratch_floats(const lstm_edge_model *model, int32_t streams)
{
    if (streams < 1 || streams > LSTM_EDGE_BATCH_BLOCK ||
        lstm_edge_check_model(model) != LSTM_EDGE_OK) {
        return 0;
    }
    /* fits: checked for LSTM_EDGE_BATCH_BLOCK streams */
    return (size_t)streams * (size_t)checked_scratch_per_stream(model);
}

/* Only for a model that passed lstm_edge_check_model (then it fits size_t). */
static size_t state_floats(const lstm_edge_model *model)
{
    return (size_t)model->num_layers * (size_t)model->hidden_size;
}

/* Floats of one stream's history: 1 + lags * outputs, or 0 without a highway. Only for a
 * model that passed lstm_edge_check_model (then it fits size_t, see highway_ok). */
static size_t history_floats(const lstm_edge_model *model)
{
    const lstm_edge_highway *hw = &model->output.highway;
    return hw->lags > 0 ? 1 + (size_t)hw->lags * (size_t)hw->n_outputs : 0;
}

size_t lstm_edge_history_floats(const lstm_edge_model *model)
{
    return lstm_edge_check_model(model) == LSTM_EDGE_OK ? history_floats(model) : 0;
}

/* The checks every function on a model and one state starts with: a highway model's
 * state needs its history too. */
static lstm_edge_status check_model_state(const lstm_edge_model *model,
                                          const lstm_edge_state *state)
{
    lstm_edge_status status;
    if (model == NULL || state == NULL || state->h == NULL || state->c == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    status = lstm_edge_check_model(model);
    if (status == LSTM_EDGE_OK && history_floats(model) > 0 && state->history == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return status;
}

lstm_edge_status lstm_edge_reset(const lstm_edge_model *model, lstm_edge_state *state)
{
    const lstm_edge_status status = check_model_state(model, state);
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    memset(state->h, 0, state_floats(model) * sizeof(float));
    memset(state->c, 0, state_floats(model) * sizeof(float));
    if (history_floats(model) > 0) {
        memset(state->history, 0, history_floats(model) * sizeof(float));
    }
    return LSTM_EDGE_OK;
}

static int finite(float v)
{
    /* v - v is 0 for finite v and NaN for NaN/Inf; no fpclassify needed. */
    return v - v == 0.0f;
}

lstm_edge_status lstm_edge_check_state(const lstm_edge_model *model, const lstm_edge_state *state)
{
    const lstm_edge_status status = check_model_state(model, state);
    size_t k;
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    for (k = 0; k < state_floats(model); ++k) {
        if (!finite(state->h[k]) || !finite(state->c[k])) {
            return LSTM_EDGE_ERR_NONFINITE_STATE;
        }
    }
    for (k = 0; k < history_floats(model); ++k) {
        if (!finite(state->history[k])) {
            return LSTM_EDGE_ERR_NONFINITE_STATE;
        }
    }
    return LSTM_EDGE_OK;
}

/* ---- input and output stages: the only code that differs between the tasks ------------ */

/* Embedding row of `token` as floats: a pointer into the model for float32, else
 * dequantized into buf [E]. */
static const float *embed(const lstm_edge_model *model, int32_t token, float *buf)
{
    const lstm_edge_embedding *emb = &model->input.embedding;
    const size_t e_size = (size_t)emb->embed_size;
    const size_t row = (size_t)token * e_size;
    size_t e;
    if (emb->f32 != NULL) {
        return emb->f32 + row;
    }
    for (e = 0; e < e_size; ++e) {
        buf[e] = (float)emb->q[row + e] * emb->scale[token];
    }
    return buf;
}

/* y[k] = v[k] * scale[k] + shift[k] with two float32 roundings, as numpy and the ONNX Mul
 * then Add compute it. The product goes through a volatile so that -ffp-contract=fast
 * cannot fuse the two into one FMA (one rounding: a different last bit); the vectors are
 * a handful of sensor columns, so the forced store costs nothing measurable. */
static void scale_shift(int32_t n, const float *v, const lstm_edge_affine *a, float *y)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        volatile float product = v[k] * a->scale[k];
        y[k] = product + a->shift[k];
    }
}

/* The layer-0 input of one stream: an embedding row (tokens) or normalized features. */
static const float *layer0_input(const lstm_edge_model *model, const int32_t *token,
                                 const float *x, float *buf)
{
    if (token != NULL) {
        return embed(model, *token, buf);
    }
    scale_shift(model->input_size, x, &model->input.normalize, buf);
    return buf;
}

/* out[i] = head_bias + head * x[i] for n lanes. */
static void head(const lstm_edge_model *model, int32_t n, const float *const *x,
                 float *const *out)
{
    const lstm_edge_matrix *m = &model->head;
    int32_t i;
    for (i = 0; i < n; ++i) {
        memcpy(out[i], model->head_bias, (size_t)m->rows * sizeof(float));
    }
    gemm_add(m, n, x, out, 0);
}

/* A forecast model's output stage, in place: standard units -> raw values. */
static void denormalize(const lstm_edge_model *model, int32_t n, float *const *out)
{
    int32_t i;
    if (model->output.denormalize.scale != NULL) {
        for (i = 0; i < n; ++i) {
            scale_shift(model->output_size, out[i], &model->output.denormalize, out[i]);
        }
    }
}

/* The linear highway (lstm_edge.h) of a chunk's lanes (lane t * nb + b), each stream's
 * steps in time order: adds lane i's highway to out[i] (the head output in standard
 * units; out NULL: none) and advances states[b].history. z[i]: lane i's normalized
 * features. After a reset (seen != 1) the rows are first filled as the spec writes it,
 * row * seen + v * (1 - seen), each product rounded on its own (volatile: no fused
 * multiply-add) as numpy and the ONNX graph round them; with seen 1 that is the row
 * itself. The window sum runs in float32 (a Cortex-M4 has no double unit): within
 * (L + 1) float32 roundings of the numpy reference's float64 sum. */
static void highway(const lstm_edge_model *model, lstm_edge_state *states, int32_t nb,
                    int32_t tb, const float *const *z, float *const *out)
{
    const lstm_edge_highway *hw = &model->output.highway;
    const size_t n = (size_t)hw->n_outputs, lags = (size_t)hw->lags;
    size_t o, r;
    int32_t b, t;
    for (b = 0; b < nb; ++b) {
        float *const hist = states[b].history, *const rows = hist + 1;
        for (t = 0; t < tb; ++t) {
            const int32_t i = t * nb + b;
            const float seen = hist[0];
            if (seen != 1.0f) {
                const float unseen = 1.0f - seen;
                for (r = 0; r < lags; ++r) {
                    for (o = 0; o < n; ++o) {
                        volatile float kept = rows[r * n + o] * seen;
                        volatile float filled = z[i][hw->select[o]] * unseen;
                        rows[r * n + o] = kept + filled;
                    }
                }
            }
            for (o = 0; o < n; ++o) {
                const float *const w = hw->weight + o * (lags + 1);
                const float v = z[i][hw->select[o]];
                float sum = w[lags] * v;
                for (r = 0; r < lags; ++r) {
                    sum += w[r] * rows[r * n + o];
                }
                if (out != NULL) {
                    out[i][o] += sum + hw->bias[o];
                }
            }
            /* the window without its oldest row: the next step's past */
            memmove(rows, rows + n, (lags - 1) * n * sizeof(float));
            for (o = 0; o < n; ++o) {
                rows[(lags - 1) * n + o] = z[i][hw->select[o]];
            }
            hist[0] = seen < 1.0f ? 1.0f : seen; /* max(seen, 1); NaN stays NaN */
        }
    }
}

/* Change targets: the head predicted the change from the last observed value; add that
 * value (raw input column last_index[k]) to get the raw forecast. */
static void add_last_values(const lstm_edge_model *model, int32_t nb, const float *const *x,
                            float *const *out)
{
    const lstm_edge_output_stage *o = &model->output;
    int32_t b;
    size_t k;
    if (o->last_index == NULL || x == NULL) {
        return; /* no change targets (x is NULL for token inputs) */
    }
    for (b = 0; b < nb; ++b) {
        for (k = 0; k < o->n_last_index; ++k) {
            out[b][k] += x[b][o->last_index[k]];
        }
    }
}

/* ---- the step (both tasks) -------------------------------------------------------------- */

/* A chunk of nb streams x tb time steps (nb * tb <= LSTM_EDGE_BATCH_BLOCK lanes, lane
 * t * nb + b) whose inputs are valid: lane i reads tok[i] (char-lm) or x[i] [F]
 * (forecast; tok is then NULL) and writes out[i] (or nothing when out is NULL). Per layer
 * the input projection of every lane is one matrix-matrix product (gemm_add), then the
 * recurrence runs step by step over the nb streams. Lane scratch (8H + input floats):
 * gates [4H], the layer's output h [H], the layer-0 input [input] at 8H. */
static void run_chunk(const lstm_edge_model *model, lstm_edge_state *states, int32_t nb,
                      int32_t tb, const int32_t *tok, const float *const *x,
                      float *const *out, float *scratch)
{
    const int32_t hidden = model->hidden_size, lanes = nb * tb;
    const size_t h_bytes = (size_t)hidden * sizeof(float);
    const size_t per_lane = (size_t)LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(model->input_size, hidden);
    const float *in[LSTM_EDGE_BATCH_BLOCK];
    const float *hprev[LSTM_EDGE_BATCH_BLOCK];
    float *gates[LSTM_EDGE_BATCH_BLOCK];
    float *hseq[LSTM_EDGE_BATCH_BLOCK];
    const float *table = tok != NULL ? model->token_gates : NULL;
    const float *z[LSTM_EDGE_BATCH_BLOCK]; /* forecast lanes' normalized features */
    int32_t i, b, t, l;

    for (i = 0; i < lanes; ++i) {
        float *s = scratch + (size_t)i * per_lane;
        gates[i] = s;
        hseq[i] = s + 4 * (size_t)hidden;
        in[i] = table != NULL ? NULL
                              : layer0_input(model, tok != NULL ? &tok[i] : NULL,
                                             tok != NULL ? NULL : x[i], s + 8 * (size_t)hidden);
        z[i] = in[i]; /* kept in scratch at 8H for the whole chunk */
    }
    for (l = 0; l < model->num_layers; ++l) {
        const lstm_edge_layer *layer = &model->layers[l];
        const size_t off = (size_t)l * (size_t)hidden;
        if (l == 0 && table != NULL) { /* bias + W embedding, computed once per token */
            for (i = 0; i < lanes; ++i) {
                memcpy(gates[i], table + (size_t)tok[i] * 4 * (size_t)hidden, 4 * h_bytes);
            }
        } else {
            for (i = 0; i < lanes; ++i) {
                memcpy(gates[i], layer->bias, 4 * h_bytes);
            }
            gemm_add(&layer->w, lanes, in, gates, 0);
        }
        for (t = 0; t < tb; ++t) {
            for (b = 0; b < nb; ++b) {
                hprev[b] = states[b].h + off;
            }
            gemm_add(&layer->r, nb, hprev, gates + (size_t)t * (size_t)nb, tb > 1);
            for (b = 0; b < nb; ++b) {
                cell_update(hidden, gates[t * nb + b], states[b].h + off, states[b].c + off);
                memcpy(hseq[t * nb + b], states[b].h + off, h_bytes);
            }
        }
        for (i = 0; i < lanes; ++i) {
            in[i] = hseq[i]; /* the next layer's input is this layer's new h */
        }
    }
    if (out != NULL) {
        head(model, lanes, in, out);
    }
    if (model->output.highway.lags > 0) { /* forecast: every lane has features */
        highway(model, states, nb, tb, z, out);
    }
    if (out != NULL) {
        denormalize(model, lanes, out);
        add_last_values(model, lanes, x, out);
    }
}

lstm_edge_status lstm_edge_token_gates(const lstm_edge_model *model, float *table,
                                       size_t table_floats, float *scratch,
                                       size_t scratch_floats, lstm_edge_model *out)
{
    const lstm_edge_status status = lstm_edge_check_model(model);
    const float *x[LSTM_EDGE_BATCH_BLOCK];
    float *y[LSTM_EDGE_BATCH_BLOCK];
    size_t gates, e_size, block;
    int32_t v0, vocab, i;
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    if (table == NULL || scratch == NULL || out == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    vocab = model->input.embedding.vocab_size;
    if (vocab < 1) {
        return LSTM_EDGE_ERR_WRONG_TASK;
    }
    /* the model passed its check: V * 4H and V * E are counts of its arrays, so they fit */
    gates = 4 * (size_t)model->hidden_size;
    e_size = (size_t)model->input.embedding.embed_size;
    if (table_floats < (size_t)vocab * gates || scratch_floats < e_size) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    block = scratch_floats / e_size < LSTM_EDGE_BATCH_BLOCK ? scratch_floats / e_size
                                                            : LSTM_EDGE_BATCH_BLOCK;
    for (v0 = 0; v0 < vocab; v0 += (int32_t)block) {
        const int32_t n = vocab - v0 < (int32_t)block ? vocab - v0 : (int32_t)block;
        for (i = 0; i < n; ++i) {
            y[i] = table + (size_t)(v0 + i) * gates;
            memcpy(y[i], model->layers[0].bias, gates * sizeof(float));
            x[i] = embed(model, v0 + i, scratch + (size_t)i * e_size);
        }
        gemm_add(&model->layers[0].w, n, x, y, 0);
    }
    *out = *model;
    out->token_gates = table;
    out->n_token_gates = (size_t)vocab * gates;
    return LSTM_EDGE_OK;
}

/* Floats from one dequantized matrix to the next: a matrix starts ALIGN_FLOATS floats (64
 * bytes, a cache line) after the previous one's start, rounded up, so that a buffer
 * aligned to 64 bytes gives every panel's vector loads whole cache lines (a load split
 * over two lines measured the float32 tiles up to 1.5x slower). */
#define ALIGN_FLOATS 16
static uint64_t padded(uint64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

/* n + the (padded) elements of matrix m if it is int8, or more than MAX_FLOATS (n is at
 * most that, and so is a checked matrix's count: no uint64_t wrap). */
static uint64_t add_int8_floats(uint64_t n, const lstm_edge_matrix *m)
{
    const uint64_t add = m->q != NULL ? padded((uint64_t)m->n_values) : 0;
    return add > MAX_FLOATS - n ? MAX_FLOATS + 1 : n + add;
}

/* Elements of the dequantized panels of a checked model's int8 matrices (0 without any),
 * or more than MAX_FLOATS when they would not fit one float array. */
static uint64_t dequantized_floats(const lstm_edge_model *model)
{
    uint64_t n = add_int8_floats(0, &model->head);
    int32_t l;
    for (l = 0; l < model->num_layers && n <= MAX_FLOATS; ++l) {
        n = add_int8_floats(add_int8_floats(n, &model->layers[l].w), &model->layers[l].r);
    }
    return n;
}

/* f[...] = (float)q * scale of an int8 matrix in panels of PANEL outputs (the float32
 * layout, lstm_edge_matrix), and m reading them (and its int8 weights too if keep_int8);
 * a float32 matrix is left alone. *at: the next free float of f, advanced past this
 * matrix. */
static void dequantize(lstm_edge_matrix *m, float *f, size_t *at, int32_t keep_int8)
{
    const size_t rows = (size_t)m->rows, cols = (size_t)m->cols;
    float *const out = f + *at;
    size_t p0, j, c;
    if (m->q == NULL) {
        return;
    }
    for (p0 = 0; p0 < rows; p0 += PANEL) {
        const size_t wp = rows - p0 < PANEL ? rows - p0 : PANEL;
        float *panel = out + p0 * cols;
        for (j = 0; j < cols; ++j) {
            const int8_t *q = m->q + j * rows + p0;
            for (c = 0; c < wp; ++c) {
                panel[j * wp + c] = (float)q[c] * m->scale[p0 + c];
            }
        }
    }
    m->f32 = out;
    m->panel = PANEL;
    if (!keep_int8) {
        m->q = NULL;
        m->scale = NULL;
        m->n_scale = 0;
    }
    *at += (size_t)padded((uint64_t)(rows * cols));
}

lstm_edge_status lstm_edge_dequantized_panels(const lstm_edge_model *model, float *panels,
                                              size_t panel_floats, int32_t keep_int8,
                                              lstm_edge_layer *layers, size_t n_layers,
                                              lstm_edge_model *out)
{
    const lstm_edge_status status = lstm_edge_check_model(model);
    lstm_edge_model copy;
    uint64_t need;
    size_t at = 0;
    int32_t l;
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    if (panels == NULL || layers == NULL || out == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    need = dequantized_floats(model);
    if (n_layers < (size_t)model->num_layers || need > MAX_FLOATS ||
        (uint64_t)panel_floats < need) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    copy = *model; /* read before anything is written: layers or out may be the model's */
    for (l = 0; l < model->num_layers; ++l) {
        lstm_edge_layer layer = model->layers[l];
        dequantize(&layer.w, panels, &at, keep_int8);
        dequantize(&layer.r, panels, &at, keep_int8);
        layers[l] = layer;
    }
    dequantize(&copy.head, panels, &at, keep_int8);
    copy.layers = layers;
    *out = copy;
    return LSTM_EDGE_OK;
}

size_t lstm_edge_dequantized_floats(const lstm_edge_model *model)
{
    uint64_t n;
    if (lstm_edge_check_model(model) != LSTM_EDGE_OK) {
        return 0;
    }
    n = dequantized_floats(model);
    return n <= MAX_FLOATS ? (size_t)n : 0;
}

size_t lstm_edge_model_bytes(void) { return sizeof(lstm_edge_model); }

size_t lstm_edge_layer_bytes(void) { return sizeof(lstm_edge_layer); }

/* Every check of a batched call before the first write, so a refused call leaves every
 * state as it was. Exactly one of tokens / x is non-NULL (the public functions see to it). */
static lstm_edge_status check_batch(const lstm_edge_model *model, const lstm_edge_state *states,
                                    int32_t batch, const int32_t *tokens, const float *x,
                                    int32_t time, const float *scratch, size_t scratch_floats)
{
    lstm_edge_status status;
    uint64_t steps, widest, n;
    size_t k;
    if (model == NULL || states == NULL || (tokens == NULL && x == NULL) || scratch == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    status = lstm_edge_check_model(model);
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    /* token ids for a model with an embedding (char-lm, classify of text), rows otherwise */
    if ((tokens != NULL) != (model->input.embedding.vocab_size > 0)) {
        return LSTM_EDGE_ERR_WRONG_TASK;
    }
    if (batch < 0 || time < 0 || scratch_floats < checked_scratch_per_stream(model)) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    /* x [batch][time][F] and out [batch][time][output_size] must be addressable, so that
     * every index below fits size_t */
    steps = (uint64_t)batch * (uint64_t)time;
    widest = model->input_size > model->output_size ? (uint64_t)model->input_size
                                                     : (uint64_t)model->output_size;
    if (!mul_limit(steps, widest, MAX_FLOATS, &n)) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (k = 0; k < (size_t)batch; ++k) {
        if (states[k].h == NULL || states[k].c == NULL ||
            (history_floats(model) > 0 && states[k].history == NULL)) {
            return LSTM_EDGE_ERR_NULL;
        }
    }
    if (tokens != NULL) {
        for (k = 0; k < (size_t)steps; ++k) {
            if (tokens[k] < 0 || tokens[k] >= model->input.embedding.vocab_size) {
                return LSTM_EDGE_ERR_BAD_TOKEN;
            }
        }
        return LSTM_EDGE_OK;
    }
    for (k = 0; k < (size_t)steps * (size_t)model->input_size; ++k) {
        if (!finite(x[k])) {
            return LSTM_EDGE_ERR_NONFINITE_INPUT;
        }
    }
    return LSTM_EDGE_OK;
}

/* The batched step of both tasks: tokens [batch][time] or x [batch][time][F] in,
 * out [batch][time][output_size] (or NULL). */
static lstm_edge_status run_batch(const lstm_edge_model *model, lstm_edge_state *states,
                                  int32_t batch, const int32_t *tokens, const float *x,
                                  int32_t time, float *out, float *scratch,
                                  size_t scratch_floats)
{
    const lstm_edge_status status =
        check_batch(model, states, batch, tokens, x, time, scratch, scratch_floats);
    size_t block;
    int32_t b0, b, t, t0, nb_max, tb_max;
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    /* the model passed check_batch: one lane's scratch is known to fit, and not 0 */
    block = scratch_floats / (size_t)checked_scratch_per_stream(model);
    if (block > LSTM_EDGE_BATCH_BLOCK) {
        block = LSTM_EDGE_BATCH_BLOCK;
    }
    /* blocks of nb streams; lanes left over go to time steps (a prefill chunk) */
    nb_max = batch < (int32_t)block ? batch : (int32_t)block;
    tb_max = nb_max > 0 ? (int32_t)block / nb_max : 1;
    for (b0 = 0; b0 < batch; b0 += nb_max) {
        const int32_t nb = batch - b0 < nb_max ? batch - b0 : nb_max;
        for (t0 = 0; t0 < time; t0 += tb_max) {
            const int32_t tb = time - t0 < tb_max ? time - t0 : tb_max;
            /* all set (one of tok / xs unused) so no compiler sees an uninitialized read */
            int32_t tok[LSTM_EDGE_BATCH_BLOCK] = {0};
            const float *xs[LSTM_EDGE_BATCH_BLOCK] = {NULL};
            float *o[LSTM_EDGE_BATCH_BLOCK] = {NULL};
            for (t = 0; t < tb; ++t) {
                for (b = 0; b < nb; ++b) {
                    const size_t bt = (size_t)(b0 + b) * (size_t)time + (size_t)(t0 + t);
                    const int32_t i = t * nb + b;
                    tok[i] = tokens != NULL ? tokens[bt] : 0;
                    xs[i] = x != NULL ? x + bt * (size_t)model->input_size : NULL;
                    o[i] = out != NULL ? out + bt * (size_t)model->output_size : NULL;
                }
            }
            run_chunk(model, states + b0, nb, tb, tokens != NULL ? tok : NULL, xs,
                      out != NULL ? o : NULL, scratch);
        }
    }
    return LSTM_EDGE_OK;
}

lstm_edge_status lstm_edge_step_batch(const lstm_edge_model *model, lstm_edge_state *states,
                                      int32_t batch, const int32_t *tokens, int32_t time,
                                      float *logits, float *scratch, size_t scratch_floats)
{
    if (tokens == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return run_batch(model, states, batch, tokens, NULL, time, logits, scratch,
                     scratch_floats);
}

lstm_edge_status lstm_edge_forecast_step_batch(const lstm_edge_model *model,
                                               lstm_edge_state *states, int32_t batch,
                                               const float *x, int32_t time, float *out,
                                               float *scratch, size_t scratch_floats)
{
    if (x == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return run_batch(model, states, batch, NULL, x, time, out, scratch, scratch_floats);
}

lstm_edge_status lstm_edge_step_many(const lstm_edge_model *model, lstm_edge_state *state,
                                     const int32_t *tokens, int32_t time, float *logits,
                                     float *scratch)
{
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return lstm_edge_step_batch(model, state, 1, tokens, time, logits, scratch,
                                lstm_edge_scratch_floats(model, 1));
}

lstm_edge_status lstm_edge_step(const lstm_edge_model *model, lstm_edge_state *state,
                                int32_t token, float *logits, float *scratch)
{
    return lstm_edge_step_many(model, state, &token, 1, logits, scratch);
}

lstm_edge_status lstm_edge_forecast_step_many(const lstm_edge_model *model,
                                              lstm_edge_state *state, const float *x,
                                              int32_t time, float *out, float *scratch)
{
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return lstm_edge_forecast_step_batch(model, state, 1, x, time, out, scratch,
                                         lstm_edge_scratch_floats(model, 1));
}

lstm_edge_status lstm_edge_forecast_step(const lstm_edge_model *model, lstm_edge_state *state,
                                         const float *x, float *out, float *scratch)
{
    return lstm_edge_forecast_step_many(model, state, x, 1, out, scratch);
}

lstm_edge_status lstm_edge_anomaly_score(const float *forecast, const float *actual,
                                         const float *residual_scale, int32_t n, float *score)
{
    float max = 0.0f;
    int32_t k;
    if (forecast == NULL || actual == NULL || residual_scale == NULL || score == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    if (n < 1) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (k = 0; k < n; ++k) {
        const float z = fabsf(forecast[k] - actual[k]) / residual_scale[k];
        if (z != z) {
            max = z; /* NaN in, NaN out: never a silent "no anomaly" */
            break;
        }
        if (z > max) {
            max = z;
        }
    }
    *score = max;
    return LSTM_EDGE_OK;
}

const char *lstm_edge_status_str(lstm_edge_status status)
{
    switch (status) {
    case LSTM_EDGE_OK:
        return "ok";
    case LSTM_EDGE_ERR_NULL:
        return "a required pointer is NULL";
    case LSTM_EDGE_ERR_BAD_TOKEN:
        return "token id out of range [0, vocab_size)";
    case LSTM_EDGE_ERR_BAD_SIZE:
        return "batch or time negative, scratch too small, or a size too large";
    case LSTM_EDGE_ERR_BAD_MODEL:
        return "model data inconsistent or of another format version";
    case LSTM_EDGE_ERR_NONFINITE_STATE:
        return "state holds NaN or Inf";
    case LSTM_EDGE_ERR_WRONG_TASK:
        return "step function of the other task (token step on a forecast model or the reverse)";
    case LSTM_EDGE_ERR_NONFINITE_INPUT:
        return "input holds NaN or Inf (fill missing sensor values before stepping)";
    }
    return "unknown status";
}
