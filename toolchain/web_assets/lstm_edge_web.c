/* lstm_edge_web.c: the char-lm step of an lstm-edge model, exported to JavaScript from a
 * WebAssembly module (lstm-edge web; see toolchain/web.py).
 *
 * The module is runtime/c/lstm_edge.c plus the model's generated data (named `net`, see
 * runtime/backends/c_source.py) plus this shim, compiled by clang for wasm32 with no
 * entry point. JavaScript owns the typed text's states (as the Python engine does): per
 * call it copies states into buffers it allocated here with web_alloc, web_step advances
 * them in place and writes the logits. A search's beams stay here, in buffers
 * web_step_beams reads parents from and writes beams to. Nothing here needs a WASI
 * import: the code uses <string.h> only, malloc grows the linear memory itself.
 *
 * The library checks the model data (lstm_edge_check_model) and zeroes states. The step
 * itself runs here, on WebAssembly SIMD kernels: the library is portable C99 with no
 * intrinsics, and WebAssembly's fused multiply-add exists only as an intrinsic (relaxed
 * SIMD's f32x4.relaxed_madd; compilers do not contract into it). The step is the
 * library's (lstm_edge.c run_chunk, the same exp polynomial in the cell update), each
 * output adding its inputs' products one by one in input order, with one difference made
 * for the beam search: layer 0's gate inputs are the token's row of the gate table plus
 * R h summed from zero (not R h added onto the row), so beams of one parent share that
 * product (web_step_beams: 54% of the search's layer-0 recurrent products are shared
 * over the first 300 keystrokes of the default model's held-out text).
 * Built with relaxed SIMD (WEB_RELAXED) each multiply-add may round once instead of twice
 * (FMA, where the CPU has it), the same way in every kernel. Either way batches, prefill
 * runs, single steps and beam steps are bit-identical to each other.
 *
 * Weights are repacked once, at start-up (web_prepare), into panels of 8 outputs
 * ([inputs][8] each, zero-padded to a multiple of 8 outputs): a tile of 4 lanes x 8
 * outputs keeps its 8 sums in vector registers over all the inputs (larger tiles spill in
 * V8's 16 registers, measured slower). int8 weight-only models are widened to float32 there
 * (q * scale, the value the numpy reference computes with): the download stays int8 (a
 * quarter of the bytes) and the steps take the float kernels (each int8 weight would be
 * converted on every use otherwise).
 */
#include <stdlib.h>
#include <string.h>
#include <wasm_simd128.h>

#include "lstm_edge.h"
#include "net_model.h"

#ifdef WEB_RELAXED
#define VMADD(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#else
#define VMADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

#define OUT 8          /* outputs per panel */
#define TILE_LANES 4   /* lanes per tile */
#define BLOCK LSTM_EDGE_BATCH_BLOCK /* lanes per chunk of a step call */
#define PAD(n) (((n) + OUT - 1) / OUT * OUT)
#define H NET_HIDDEN
#define G PAD(4 * NET_HIDDEN) /* gate inputs per lane, padded */
#define V NET_OUTPUT_SIZE

/* A weight matrix repacked: `rows` outputs (padded to a multiple of OUT) in panels of
 * OUT, panel p's weights [cols][OUT] at p * OUT * cols. */
typedef struct {
    int32_t rows, cols;
    float *w;
} panels;

static float *table; /* layer 0's gate inputs per token [V][G] (web_prepare) */
static panels recurrent[NET_LAYERS], input[NET_LAYERS], head;
/* scratch: gate inputs [BLOCK][G], layer 0's shared products [BLOCK][G], a layer's new h
 * [BLOCK][H], logits [BLOCK][PAD(V)] */
static float *gates, *rh, *hseq, *out;
static int prepared;

/* ---- matrix kernels ------------------------------------------------------------------- */

/* y[l][c0 .. c0 + NP * OUT) += W x[l] for NL lanes, the sums in registers over all inputs
 * (each output adds its inputs in input order). */
#define DEFINE_TILE(NAME, NL, NP)                                                            \
    static void NAME(int32_t cols, const float *restrict w, const float *const *x,          \
                     float *const *y, int32_t c0)                                            \
    {                                                                                        \
        v128_t acc[NL][NP][2];                                                               \
        int32_t k, l, q;                                                                     \
        for (l = 0; l < NL; ++l) {                                                           \
            for (q = 0; q < NP; ++q) {                                                       \
                acc[l][q][0] = wasm_v128_load(y[l] + c0 + OUT * q);                          \
                acc[l][q][1] = wasm_v128_load(y[l] + c0 + OUT * q + 4);                      \
            }                                                                                \
        }                                                                                    \
        for (k = 0; k < cols; ++k) {                                                         \
            v128_t wk[NP][2];                                                                \
            for (q = 0; q < NP; ++q) {                                                       \
                const float *p = w + (size_t)q * (size_t)cols * OUT + (size_t)k * OUT;       \
                wk[q][0] = wasm_v128_load(p);                                                \
                wk[q][1] = wasm_v128_load(p + 4);                                            \
            }                                                                                \
            for (l = 0; l < NL; ++l) {                                                       \
                const v128_t xk = wasm_v128_load32_splat(x[l] + k);                          \
                for (q = 0; q < NP; ++q) {                                                   \
                    acc[l][q][0] = VMADD(xk, wk[q][0], acc[l][q][0]);                        \
                    acc[l][q][1] = VMADD(xk, wk[q][1], acc[l][q][1]);                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
        for (l = 0; l < NL; ++l) {                                                           \
            for (q = 0; q < NP; ++q) {                                                       \
                wasm_v128_store(y[l] + c0 + OUT * q, acc[l][q][0]);                          \
                wasm_v128_store(y[l] + c0 + OUT * q + 4, acc[l][q][1]);                      \
            }                                                                                \
        }                                                                                    \
    }
DEFINE_TILE(tile4x1, TILE_LANES, 1)
DEFINE_TILE(tile1x4, 1, 4) /* one lane: four panels, enough independent sums */
DEFINE_TILE(tile1x1, 1, 1)

/* y[i] += M x[i] for nb lanes (y padded to M's rows). Per panel, four lanes at a time (the
 * panel, cols x 32 bytes, stays in L1 for the next four); a lone lane four panels at a
 * time. */
static void gemm(const panels *m, int32_t nb, const float *const *x, float *const *y)
{
    const size_t per_panel = (size_t)m->cols * OUT;
    int32_t c0 = 0, i, tail = nb % TILE_LANES, full = nb - tail;
    for (; c0 < m->rows; c0 += OUT) {
        const float *w = m->w + (size_t)(c0 / OUT) * per_panel;
        for (i = 0; i < full; i += TILE_LANES) {
            tile4x1(m->cols, w, x + i, y + i, c0);
        }
    }
    for (i = full; i < nb; ++i) {
        for (c0 = 0; c0 + 4 * OUT <= m->rows; c0 += 4 * OUT) {
            tile1x4(m->cols, m->w + (size_t)(c0 / OUT) * per_panel, x + i, y + i, c0);
        }
        for (; c0 < m->rows; c0 += OUT) {
            tile1x1(m->cols, m->w + (size_t)(c0 / OUT) * per_panel, x + i, y + i, c0);
        }
    }
}

/* ---- the LSTM cell (lstm_edge.c's, value for value) ----------------------------------- */

static inline float exp_(float v)
{
    const float x = v > 88.0f ? 88.0f : (v < -87.0f ? -87.0f : v); /* NaN stays NaN */
    const float xs = x == x ? x : 0.0f;
    const float k = (xs * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (xs - k * 0.693359375f) + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f, scale;
    const int32_t bits = ((int32_t)k + 127) * 8388608;
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
static inline float tanh_(float v) { return 1.0f - 2.0f / (1.0f + exp_(2.0f * v)); }

/* ONNX LSTM update from gate inputs g [4H] in the order i, o, f, c, h and c in place. */
static void cell_update(const float *g, float *restrict h, float *restrict c)
{
    const float *restrict gi = g, *restrict go = g + H, *restrict gf = g + 2 * H,
                          *restrict gc = g + 3 * H;
    int32_t k;
    for (k = 0; k < H; ++k) {
        const float i = sigmoid(gi[k]);
        const float o = sigmoid(go[k]);
        const float f = sigmoid(gf[k]);
        const float cn = f * c[k] + i * tanh_(gc[k]);
        c[k] = cn;
        h[k] = o * tanh_(cn);
    }
}

/* ---- start-up ------------------------------------------------------------------------- */

/* Element (r, j) of a library matrix: float32 in panels of m->panel outputs (0: one
 * panel), or int8 input-major times its row scale. */
static float element(const lstm_edge_matrix *m, int32_t r, int32_t j)
{
    const size_t rows = (size_t)m->rows, cols = (size_t)m->cols;
    size_t p0, w;
    if (m->q != NULL) {
        return (float)m->q[(size_t)j * rows + (size_t)r] * m->scale[r];
    }
    if (m->panel == 0) {
        return m->f32[(size_t)j * rows + (size_t)r];
    }
    p0 = (size_t)r / (size_t)m->panel * (size_t)m->panel;
    w = rows - p0 < (size_t)m->panel ? rows - p0 : (size_t)m->panel;
    return m->f32[p0 * cols + (size_t)j * w + ((size_t)r - p0)];
}

static int repack(const lstm_edge_matrix *m, panels *out)
{
    const int32_t rows = PAD(m->rows);
    int32_t r, j;
    float *w = (float *)calloc((size_t)rows * (size_t)m->cols, sizeof(float));
    if (w == NULL) {
        return 0;
    }
    for (r = 0; r < m->rows; ++r) {
        float *panel = w + (size_t)(r / OUT) * (size_t)m->cols * OUT + (size_t)(r % OUT);
        for (j = 0; j < m->cols; ++j) {
            panel[(size_t)j * OUT] = element(m, r, j);
        }
    }
    out->rows = rows;
    out->cols = m->cols;
    out->w = w;
    return 1;
}

/* Layer 0's gate inputs per token, table [V][G]: its bias plus W times the token's
 * embedding row (int8: widened), summed as a step sums them (the library's
 * lstm_edge_token_gates on the widened model), so a step copies a row instead of a
 * matrix-vector product. */
static int token_gates(void)
{
    const lstm_edge_embedding *emb = &net_model.input.embedding;
    const size_t e_size = (size_t)emb->embed_size;
    float *rows = (float *)malloc(sizeof(float) * (size_t)BLOCK * e_size);
    const float *x[BLOCK];
    float *y[BLOCK];
    panels w0;
    int32_t v0, i;
    size_t e;
    table = (float *)malloc(sizeof(float) * (size_t)NET_VOCAB * G);
    if (rows == NULL || table == NULL || !repack(&net_model.layers[0].w, &w0)) {
        return 0;
    }
    for (v0 = 0; v0 < NET_VOCAB; v0 += BLOCK) {
        const int32_t n = NET_VOCAB - v0 < BLOCK ? NET_VOCAB - v0 : BLOCK;
        for (i = 0; i < n; ++i) {
            const size_t row = (size_t)(v0 + i) * e_size;
            float *r = rows + (size_t)i * e_size;
            for (e = 0; e < e_size; ++e) {
                r[e] = emb->f32 != NULL ? emb->f32[row + e]
                                        : (float)emb->q[row + e] * emb->scale[v0 + i];
            }
            x[i] = r;
            y[i] = table + (size_t)(v0 + i) * G;
            memcpy(y[i], net_model.layers[0].bias, 4 * H * sizeof(float));
        }
        gemm(&w0, n, x, y);
    }
    free(rows);
    free(w0.w);
    return 1;
}

/* Call once before stepping: checks the model data (the library), repacks (and widens)
 * the weights and computes the token gate table; lstm_edge_check_model's status, or
 * LSTM_EDGE_ERR_BAD_SIZE when out of memory. */
int32_t web_prepare(void)
{
    int32_t l, ok;
    lstm_edge_status st = lstm_edge_check_model(&net_model);
    if (st != LSTM_EDGE_OK || prepared) {
        return (int32_t)st;
    }
    ok = token_gates() && repack(&net_model.head, &head);
    for (l = 0; l < NET_LAYERS; ++l) {
        ok = ok && repack(&net_model.layers[l].r, &recurrent[l]);
        ok = ok && (l == 0 || repack(&net_model.layers[l].w, &input[l]));
    }
    gates = (float *)malloc(sizeof(float) * (size_t)BLOCK * G);
    rh = (float *)malloc(sizeof(float) * (size_t)BLOCK * G);
    hseq = (float *)malloc(sizeof(float) * (size_t)BLOCK * H);
    out = (float *)malloc(sizeof(float) * (size_t)BLOCK * PAD(V));
    if (!ok || gates == NULL || rh == NULL || hseq == NULL || out == NULL) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    prepared = 1;
    return LSTM_EDGE_OK;
}

/* ---- the step ------------------------------------------------------------------------- */

/* Layer 0's gate inputs of nb lanes: its token gate row plus R h. Lanes that continue the
 * same stream (beams of one parent: group[b] names the lane whose h they share) share
 * the product, computed once per group from zero and then added to each lane's row, so a
 * lane's gate inputs are the same numbers whether it shares or not. */
static void layer0_gates(int32_t nb, const int32_t *group, const float *const *hprev,
                         const int32_t *tok, float *const *g)
{
    const float *x[BLOCK];
    float *y[BLOCK];
    int32_t slot[BLOCK]; /* lane b's product at rh + slot[b] * G */
    int32_t b, n = 0, k;
    for (b = 0; b < nb; ++b) {
        if (group[b] == b) { /* the first lane of its group */
            x[n] = hprev[b];
            y[n] = rh + (size_t)n * G;
            memset(y[n], 0, G * sizeof(float));
            slot[b] = n++;
        } else {
            slot[b] = slot[group[b]];
        }
    }
    gemm(&recurrent[0], n, x, y);
    for (b = 0; b < nb; ++b) {
        const float *restrict row = table + (size_t)tok[b] * G;
        const float *restrict r = rh + (size_t)slot[b] * G;
        float *restrict gb = g[b];
        for (k = 0; k < 4 * H; ++k) {
            gb[k] = row[k] + r[k];
        }
    }
}

/* A chunk of nb streams x tb time steps (nb * tb <= BLOCK lanes, lane t * nb + b, token
 * tok[lane]; stream b's state at h, c + b * NET_STATE_FLOATS, advanced in place), as
 * lstm_edge.c's run_chunk: per layer the input projection of every lane is one matrix
 * product, then the recurrence runs step by step over the nb streams; then the head of
 * every lane into logits[lane]. group: see layer0_gates (time step 0 only: streams that
 * share a state share it only until their first token). */
static void run_chunk(float *h, float *c, int32_t nb, int32_t tb, const int32_t *tok,
                      const int32_t *group, float *const *logits)
{
    const int32_t lanes = nb * tb;
    const float *in[BLOCK], *hprev[BLOCK];
    float *g[BLOCK], *o[BLOCK];
    int32_t own[BLOCK];
    int32_t i, b, t, l;
    for (i = 0; i < lanes; ++i) {
        g[i] = gates + (size_t)i * G;
        o[i] = out + (size_t)i * PAD(V);
        own[i] = i % nb;
    }
    for (l = 0; l < NET_LAYERS; ++l) {
        const size_t off = (size_t)l * H;
        if (l > 0) {
            for (i = 0; i < lanes; ++i) {
                memcpy(g[i], net_model.layers[l].bias, 4 * H * sizeof(float));
            }
            gemm(&input[l], lanes, in, g);
        }
        for (t = 0; t < tb; ++t) {
            for (b = 0; b < nb; ++b) {
                hprev[b] = h + (size_t)b * NET_STATE_FLOATS + off;
            }
            if (l == 0) {
                layer0_gates(nb, t == 0 ? group : own, hprev, tok + t * nb, g + t * nb);
            } else {
                gemm(&recurrent[l], nb, hprev, g + (size_t)t * (size_t)nb);
            }
            for (b = 0; b < nb; ++b) {
                float *hb = h + (size_t)b * NET_STATE_FLOATS + off;
                cell_update(g[t * nb + b], hb, c + (size_t)b * NET_STATE_FLOATS + off);
                memcpy(hseq + (size_t)(t * nb + b) * H, hb, H * sizeof(float));
            }
        }
        for (i = 0; i < lanes; ++i) {
            in[i] = hseq + (size_t)i * H; /* the next layer's input is this layer's new h */
        }
    }
    for (i = 0; i < lanes; ++i) {
        memcpy(o[i], net_model.head_bias, V * sizeof(float));
    }
    gemm(&head, lanes, in, o);
    for (i = 0; i < lanes; ++i) {
        memcpy(logits[i], o[i], V * sizeof(float));
    }
}

/* Sizes the JavaScript side allocates with. */
int32_t web_vocab_size(void) { return V; }
int32_t web_state_floats(void) { return NET_STATE_FLOATS; }

/* Linear memory for JavaScript's buffers (tokens, states, logits). */
void *web_alloc(int32_t bytes) { return bytes > 0 ? malloc((size_t)bytes) : NULL; }
void web_free(void *p) { free(p); }

/* Zero `batch` states: h and c are [batch][NET_STATE_FLOATS] (lstm_edge_reset each). */
int32_t web_init_state(float *h, float *c, int32_t batch)
{
    int32_t b;
    for (b = 0; b < batch; ++b) {
        lstm_edge_state s = {.h = h + (size_t)b * NET_STATE_FLOATS,
                             .c = c + (size_t)b * NET_STATE_FLOATS};
        lstm_edge_status st = lstm_edge_reset(&net_model, &s);
        if (st != LSTM_EDGE_OK) {
            return (int32_t)st;
        }
    }
    return LSTM_EDGE_OK;
}

/* `batch` streams of `time` tokens each (tokens [batch][time]) from the states h, c
 * ([batch][NET_STATE_FLOATS] each, advanced in place): logits [batch][time][V]. Every
 * token is checked before any state is written. Blocks of up to BLOCK streams; lanes left
 * over go to time steps (a prefill run), as lstm_edge_step_batch does. */
int32_t web_step(int32_t batch, int32_t time, const int32_t *tokens, float *h, float *c,
                 float *logits)
{
    int32_t b0, t0, b, t, nb_max, tb_max;
    size_t k;
    if (!prepared) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    if (tokens == NULL || h == NULL || c == NULL || logits == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    if (batch < 1 || time < 1) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (k = 0; k < (size_t)batch * (size_t)time; ++k) {
        if (tokens[k] < 0 || tokens[k] >= NET_VOCAB) {
            return LSTM_EDGE_ERR_BAD_TOKEN;
        }
    }
    nb_max = batch < BLOCK ? batch : BLOCK;
    tb_max = BLOCK / nb_max;
    for (b0 = 0; b0 < batch; b0 += nb_max) {
        const int32_t nb = batch - b0 < nb_max ? batch - b0 : nb_max;
        for (t0 = 0; t0 < time; t0 += tb_max) {
            const int32_t tb = time - t0 < tb_max ? time - t0 : tb_max;
            int32_t tok[BLOCK], own[BLOCK];
            float *lg[BLOCK];
            for (t = 0; t < tb; ++t) {
                for (b = 0; b < nb; ++b) {
                    const size_t bt = (size_t)(b0 + b) * (size_t)time + (size_t)(t0 + t);
                    tok[t * nb + b] = tokens[bt];
                    lg[t * nb + b] = logits + bt * V;
                    own[b] = b;
                }
            }
            run_chunk(h + (size_t)b0 * NET_STATE_FLOATS, c + (size_t)b0 * NET_STATE_FLOATS,
                      nb, tb, tok, own, lg);
        }
    }
    return LSTM_EDGE_OK;
}

/* The beam search's step: lane b continues stream parent[b] of the `parents` states hs, cs
 * ([parents][NET_STATE_FLOATS] each) with tokens[b]; the new states go to hd, cd
 * ([batch][NET_STATE_FLOATS], not overlapping hs, cs), the logits to [batch][V]. Equal to
 * selecting the parents' states and stepping them (web_step), with layer 0's recurrent
 * product computed once per parent (layer0_gates). */
int32_t web_step_beams(int32_t batch, const int32_t *tokens, const int32_t *parent,
                       int32_t parents, const float *hs, const float *cs, float *hd, float *cd,
                       float *logits)
{
    int32_t b0, b, k;
    if (!prepared) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    if (tokens == NULL || parent == NULL || hs == NULL || cs == NULL || hd == NULL ||
        cd == NULL || logits == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    if (batch < 1 || parents < 1) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (b = 0; b < batch; ++b) {
        if (tokens[b] < 0 || tokens[b] >= NET_VOCAB) {
            return LSTM_EDGE_ERR_BAD_TOKEN;
        }
        if (parent[b] < 0 || parent[b] >= parents) {
            return LSTM_EDGE_ERR_BAD_SIZE;
        }
    }
    for (b0 = 0; b0 < batch; b0 += BLOCK) {
        const int32_t nb = batch - b0 < BLOCK ? batch - b0 : BLOCK;
        int32_t group[BLOCK];
        float *lg[BLOCK];
        for (b = 0; b < nb; ++b) {
            const size_t from = (size_t)parent[b0 + b] * NET_STATE_FLOATS;
            const size_t to = (size_t)(b0 + b) * NET_STATE_FLOATS;
            memcpy(hd + to, hs + from, NET_STATE_FLOATS * sizeof(float));
            memcpy(cd + to, cs + from, NET_STATE_FLOATS * sizeof(float));
            lg[b] = logits + (size_t)(b0 + b) * V;
            for (k = 0; k < b && parent[b0 + k] != parent[b0 + b]; ++k) {
            }
            group[b] = k; /* the first lane of this chunk with the same parent */
        }
        run_chunk(hd + (size_t)b0 * NET_STATE_FLOATS, cd + (size_t)b0 * NET_STATE_FLOATS, nb, 1,
                  tokens + b0, group, lg);
    }
    return LSTM_EDGE_OK;
}
