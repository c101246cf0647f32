/* lstm_edge.c: the LSTM step of lstm-edge models in portable C99 (see lstm_edge.h).
 *
 * Read top to bottom: matrix kernels, the cell update, the batched step, then the
 * one-stream wrappers. Nothing here allocates or keeps state between calls.
 *
 * Why the kernels look the way they do: a row-dot loop (sum_j W[r][j] x[j]) is a float
 * reduction, which a compiler may not reorder without -ffast-math, so it runs scalar. The
 * weights are stored input-major instead, and each pass adds four inputs' contributions to
 * all outputs: every output is independent, so -O2/-O3 vectorize the inner loop as written,
 * and the accumulator is read and written once per four inputs instead of once per input.
 */
#include "lstm_edge.h"

#include <math.h>
#include <string.h>

/* ---- matrix kernels --------------------------------------------------------------------- */

/* y[b][r] += sum_j W[r][j] * x[b][j] for nb streams; W float32, input-major. The four
 * weight rows of one pass stay in L1 while every stream of the block uses them. */
static void acc_f32(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                    float *const *y)
{
    const size_t rows = (size_t)m->rows;
    const int32_t n = m->rows;
    int32_t j = 0;
    for (; j + 4 <= m->cols; j += 4) {
        const float *w0 = m->f32 + (size_t)j * rows;
        const float *w1 = w0 + rows;
        const float *w2 = w1 + rows;
        const float *w3 = w2 + rows;
        int32_t b;
        for (b = 0; b < nb; ++b) {
            const float x0 = x[b][j], x1 = x[b][j + 1], x2 = x[b][j + 2], x3 = x[b][j + 3];
            float *restrict yb = y[b];
            int32_t r;
            for (r = 0; r < n; ++r) {
                yb[r] += (x0 * w0[r] + x1 * w1[r]) + (x2 * w2[r] + x3 * w3[r]);
            }
        }
    }
    for (; j < m->cols; ++j) {
        const float *w0 = m->f32 + (size_t)j * rows;
        int32_t b;
        for (b = 0; b < nb; ++b) {
            const float x0 = x[b][j];
            float *restrict yb = y[b];
            int32_t r;
            for (r = 0; r < n; ++r) {
                yb[r] += x0 * w0[r];
            }
        }
    }
}

/* acc[b][r] += sum_j q[r][j] * x[b][j] for int8 q (the row scale is applied by the caller). */
static void acc_i8(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                   float *const *acc)
{
    const size_t rows = (size_t)m->rows;
    const int32_t n = m->rows;
    int32_t j = 0;
    for (; j + 4 <= m->cols; j += 4) {
        const int8_t *q0 = m->q + (size_t)j * rows;
        const int8_t *q1 = q0 + rows;
        const int8_t *q2 = q1 + rows;
        const int8_t *q3 = q2 + rows;
        int32_t b;
        for (b = 0; b < nb; ++b) {
            const float x0 = x[b][j], x1 = x[b][j + 1], x2 = x[b][j + 2], x3 = x[b][j + 3];
            float *restrict ab = acc[b];
            int32_t r;
            for (r = 0; r < n; ++r) {
                ab[r] += (x0 * (float)q0[r] + x1 * (float)q1[r]) +
                         (x2 * (float)q2[r] + x3 * (float)q3[r]);
            }
        }
    }
    for (; j < m->cols; ++j) {
        const int8_t *q0 = m->q + (size_t)j * rows;
        int32_t b;
        for (b = 0; b < nb; ++b) {
            const float x0 = x[b][j];
            float *restrict ab = acc[b];
            int32_t r;
            for (r = 0; r < n; ++r) {
                ab[r] += x0 * (float)q0[r];
            }
        }
    }
}

/* y[b] += M x[b]. An int8 matrix accumulates into acc[b] first, then adds scale * acc. */
static void matvec_add(const lstm_edge_matrix *m, int32_t nb, const float *const *x,
                       float *const *y, float *const *acc)
{
    int32_t b, r;
    if (m->f32 != NULL) {
        acc_f32(m, nb, x, y);
        return;
    }
    for (b = 0; b < nb; ++b) {
        memset(acc[b], 0, (size_t)m->rows * sizeof(float));
    }
    acc_i8(m, nb, x, acc);
    for (b = 0; b < nb; ++b) {
        float *restrict yb = y[b];
        const float *restrict ab = acc[b];
        for (r = 0; r < m->rows; ++r) {
            yb[r] += m->scale[r] * ab[r];
        }
    }
}

/* ---- the LSTM cell ---------------------------------------------------------------------- */

static float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

/* tanh through expf: glibc's tanhf goes through expm1f and cost 40% of a small model's
 * step (measured with perf); this form is within ~1e-7 absolute of tanh and saturates
 * cleanly (expf overflowing to Inf gives exactly 1). */
static float tanh_(float v) { return 1.0f - 2.0f / (1.0f + expf(2.0f * v)); }

/* ONNX LSTM update from pre-activation gates g [4H] in the order i, o, f, c:
 * C = f * C + i * tanh(g_c); H = o * tanh(C). h and c are updated in place. */
static void cell_update(int32_t hidden, const float *g, float *h, float *c)
{
    int32_t k;
    for (k = 0; k < hidden; ++k) {
        const float i = sigmoid(g[k]);
        const float o = sigmoid(g[hidden + k]);
        const float f = sigmoid(g[2 * hidden + k]);
        const float cand = tanh_(g[3 * hidden + k]);
        const float cn = f * c[k] + i * cand;
        c[k] = cn;
        h[k] = o * tanh_(cn);
    }
}

/* ---- checks ----------------------------------------------------------------------------- */

static int matrix_ok(const lstm_edge_matrix *m, int32_t rows, int32_t cols)
{
    if (m->rows != rows || m->cols != cols) {
        return 0;
    }
    if (m->f32 != NULL) {
        return m->q == NULL;
    }
    return m->q != NULL && m->scale != NULL;
}

lstm_edge_status lstm_edge_check_model(const lstm_edge_model *model)
{
    int32_t l, hidden;
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    hidden = model->hidden_size;
    if (model->format_version != LSTM_EDGE_FORMAT_VERSION || model->vocab_size < 1 ||
        model->embed_size < 1 || hidden < 1 || model->num_layers < 1 || model->layers == NULL ||
        model->head_bias == NULL) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    if ((model->embedding == NULL) ==
        (model->embedding_q == NULL || model->embedding_scale == NULL)) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    if (!matrix_ok(&model->head, model->vocab_size, hidden)) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    for (l = 0; l < model->num_layers; ++l) {
        const lstm_edge_layer *layer = &model->layers[l];
        const int32_t in = l == 0 ? model->embed_size : hidden;
        if (!matrix_ok(&layer->w, 4 * hidden, in) || !matrix_ok(&layer->r, 4 * hidden, hidden) ||
            layer->bias == NULL) {
            return LSTM_EDGE_ERR_BAD_MODEL;
        }
    }
    return LSTM_EDGE_OK;
}

size_t lstm_edge_scratch_floats(const lstm_edge_model *model, int32_t streams)
{
    return (size_t)streams *
           (size_t)LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(model->embed_size, model->hidden_size);
}

static size_t state_floats(const lstm_edge_model *model)
{
    return (size_t)model->num_layers * (size_t)model->hidden_size;
}

lstm_edge_status lstm_edge_reset(const lstm_edge_model *model, lstm_edge_state *state)
{
    if (model == NULL || state == NULL || state->h == NULL || state->c == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    memset(state->h, 0, state_floats(model) * sizeof(float));
    memset(state->c, 0, state_floats(model) * sizeof(float));
    return LSTM_EDGE_OK;
}

static int finite(float v)
{
    /* v - v is 0 for finite v and NaN for NaN/Inf; no fpclassify needed. */
    return v - v == 0.0f;
}

lstm_edge_status lstm_edge_check_state(const lstm_edge_model *model, const lstm_edge_state *state)
{
    size_t k;
    if (model == NULL || state == NULL || state->h == NULL || state->c == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    for (k = 0; k < state_floats(model); ++k) {
        if (!finite(state->h[k]) || !finite(state->c[k])) {
            return LSTM_EDGE_ERR_NONFINITE_STATE;
        }
    }
    return LSTM_EDGE_OK;
}

/* ---- the step --------------------------------------------------------------------------- */

/* Embedding row of `token` as floats: a pointer into the model for float32, else
 * dequantized into buf [E]. */
static const float *embed(const lstm_edge_model *model, int32_t token, float *buf)
{
    const size_t e_size = (size_t)model->embed_size;
    const size_t row = (size_t)token * e_size;
    size_t e;
    if (model->embedding != NULL) {
        return model->embedding + row;
    }
    for (e = 0; e < e_size; ++e) {
        buf[e] = (float)model->embedding_q[row + e] * model->embedding_scale[token];
    }
    return buf;
}

/* logits[b] = head_bias + head * x[b]; an int8 head accumulates in logits itself. */
static void head(const lstm_edge_model *model, int32_t nb, const float *const *x,
                 float *const *logits)
{
    const lstm_edge_matrix *m = &model->head;
    int32_t b, v;
    if (m->f32 != NULL) {
        for (b = 0; b < nb; ++b) {
            memcpy(logits[b], model->head_bias, (size_t)m->rows * sizeof(float));
        }
        acc_f32(m, nb, x, logits);
        return;
    }
    for (b = 0; b < nb; ++b) {
        memset(logits[b], 0, (size_t)m->rows * sizeof(float));
    }
    acc_i8(m, nb, x, logits);
    for (b = 0; b < nb; ++b) {
        float *restrict yb = logits[b];
        for (v = 0; v < m->rows; ++v) {
            yb[v] = model->head_bias[v] + m->scale[v] * yb[v];
        }
    }
}

/* One time step for nb (<= LSTM_EDGE_BATCH_BLOCK) streams whose tokens are valid. */
static void step_block(const lstm_edge_model *model, lstm_edge_state *states, int32_t nb,
                       const int32_t *tok, float *const *logits, float *scratch)
{
    const int32_t hidden = model->hidden_size;
    const size_t per_stream =
        (size_t)LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(model->embed_size, hidden);
    const float *in[LSTM_EDGE_BATCH_BLOCK];
    const float *hprev[LSTM_EDGE_BATCH_BLOCK];
    float *gates[LSTM_EDGE_BATCH_BLOCK];
    float *acc[LSTM_EDGE_BATCH_BLOCK];
    int32_t b, l;

    for (b = 0; b < nb; ++b) {
        float *s = scratch + (size_t)b * per_stream;
        gates[b] = s;
        acc[b] = s + 4 * (size_t)hidden;
        in[b] = embed(model, tok[b], s + 8 * (size_t)hidden);
    }
    for (l = 0; l < model->num_layers; ++l) {
        const lstm_edge_layer *layer = &model->layers[l];
        const size_t off = (size_t)l * (size_t)hidden;
        for (b = 0; b < nb; ++b) {
            memcpy(gates[b], layer->bias, 4 * (size_t)hidden * sizeof(float));
            hprev[b] = states[b].h + off;
        }
        matvec_add(&layer->w, nb, in, gates, acc);
        matvec_add(&layer->r, nb, hprev, gates, acc);
        for (b = 0; b < nb; ++b) {
            cell_update(hidden, gates[b], states[b].h + off, states[b].c + off);
            in[b] = states[b].h + off; /* the next layer's input is this layer's new h */
        }
    }
    if (logits != NULL) {
        head(model, nb, in, logits);
    }
}

lstm_edge_status lstm_edge_step_batch(const lstm_edge_model *model, lstm_edge_state *states,
                                      int32_t batch, const int32_t *tokens, int32_t time,
                                      float *logits, float *scratch, size_t scratch_floats)
{
    size_t per_stream, block;
    int32_t b0, b, t;
    if (model == NULL || states == NULL || tokens == NULL || scratch == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    if (batch < 0 || time < 0) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    per_stream = lstm_edge_scratch_floats(model, 1);
    block = scratch_floats / per_stream;
    if (block < 1) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    if (block > LSTM_EDGE_BATCH_BLOCK) {
        block = LSTM_EDGE_BATCH_BLOCK;
    }
    /* Every check before the first write, so a refused call leaves every state as it was. */
    for (b = 0; b < batch; ++b) {
        if (states[b].h == NULL || states[b].c == NULL) {
            return LSTM_EDGE_ERR_NULL;
        }
        for (t = 0; t < time; ++t) {
            const int32_t token = tokens[(size_t)b * (size_t)time + (size_t)t];
            if (token < 0 || token >= model->vocab_size) {
                return LSTM_EDGE_ERR_BAD_TOKEN;
            }
        }
    }
    for (b0 = 0; b0 < batch; b0 += (int32_t)block) {
        const int32_t nb = batch - b0 < (int32_t)block ? batch - b0 : (int32_t)block;
        for (t = 0; t < time; ++t) {
            int32_t tok[LSTM_EDGE_BATCH_BLOCK];
            float *out[LSTM_EDGE_BATCH_BLOCK];
            for (b = 0; b < nb; ++b) {
                const size_t bt = (size_t)(b0 + b) * (size_t)time + (size_t)t;
                tok[b] = tokens[bt];
                out[b] = logits != NULL ? logits + bt * (size_t)model->vocab_size : NULL;
            }
            step_block(model, states + b0, nb, tok, logits != NULL ? out : NULL, scratch);
        }
    }
    return LSTM_EDGE_OK;
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
        return "batch or time negative, or scratch too small";
    case LSTM_EDGE_ERR_BAD_MODEL:
        return "model data inconsistent or of another format version";
    case LSTM_EDGE_ERR_NONFINITE_STATE:
        return "state holds NaN or Inf";
    }
    return "unknown status";
}
