/* lstm_edge.c: the LSTM step of lstm-edge models in portable C99 (see lstm_edge.h).
 *
 * Read top to bottom: matrix kernels, the cell update, the input and output stages of the
 * two tasks, the batched step (shared by both), then the one-stream wrappers. Nothing here
 * allocates or keeps state between calls.
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
    if (m->f32 != NULL) {
        return m->q == NULL && m->scale == NULL && m->n_scale == 0;
    }
    return m->q != NULL && m->scale != NULL && count_ok(m->n_scale, rows, 1);
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
        if (emb->vocab_size < 1 || emb->embed_size < 1 || !no_norm ||
            model->input_size != emb->embed_size || model->output_size != emb->vocab_size ||
            !count_ok(emb->n_values, emb->vocab_size, emb->embed_size)) {
            return 0;
        }
        /* exactly one of the float32 and the int8 (with scales) embedding */
        if (emb->f32 != NULL) {
            return emb->q == NULL && emb->scale == NULL && emb->n_scale == 0;
        }
        return emb->q != NULL && emb->scale != NULL && count_ok(emb->n_scale, emb->vocab_size, 1);
    case LSTM_EDGE_TASK_FORECAST:
        return no_embedding && affine_ok(in, model->input_size) &&
               affine_ok(out, model->output_size) && last_index_ok(model);
    case LSTM_EDGE_TASK_CLASSIFY: /* logits are the head's output: no output stage */
        return no_embedding && affine_ok(in, model->input_size) && affine_empty(out);
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
        !stages_ok(model) || !matrix_ok(&model->head, model->output_size, hidden)) {
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

/* The checks every function on a model and one state starts with. */
static lstm_edge_status check_model_state(const lstm_edge_model *model,
                                          const lstm_edge_state *state)
{
    if (model == NULL || state == NULL || state->h == NULL || state->c == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return lstm_edge_check_model(model);
}

lstm_edge_status lstm_edge_reset(const lstm_edge_model *model, lstm_edge_state *state)
{
    const lstm_edge_status status = check_model_state(model, state);
    if (status != LSTM_EDGE_OK) {
        return status;
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

/* out[b] = head_bias + head * x[b]; an int8 head accumulates in out itself. A forecast
 * model's output stage then denormalizes in place. */
static void head(const lstm_edge_model *model, int32_t nb, const float *const *x,
                 float *const *out)
{
    const lstm_edge_matrix *m = &model->head;
    int32_t b, v;
    if (m->f32 != NULL) {
        for (b = 0; b < nb; ++b) {
            memcpy(out[b], model->head_bias, (size_t)m->rows * sizeof(float));
        }
        acc_f32(m, nb, x, out);
    } else {
        for (b = 0; b < nb; ++b) {
            memset(out[b], 0, (size_t)m->rows * sizeof(float));
        }
        acc_i8(m, nb, x, out);
        for (b = 0; b < nb; ++b) {
            float *restrict yb = out[b];
            for (v = 0; v < m->rows; ++v) {
                yb[v] = model->head_bias[v] + m->scale[v] * yb[v];
            }
        }
    }
    if (model->output.denormalize.scale != NULL) {
        for (b = 0; b < nb; ++b) {
            scale_shift(m->rows, out[b], &model->output.denormalize, out[b]);
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
    if (o->last_index == NULL) {
        return;
    }
    for (b = 0; b < nb; ++b) {
        for (k = 0; k < o->n_last_index; ++k) {
            out[b][k] += x[b][o->last_index[k]];
        }
    }
}

/* ---- the step (both tasks) -------------------------------------------------------------- */

/* One time step for nb (<= LSTM_EDGE_BATCH_BLOCK) streams whose inputs are valid: stream b
 * reads tok[b] (char-lm) or x[b] [F] (forecast; tok is then NULL). */
static void step_block(const lstm_edge_model *model, lstm_edge_state *states, int32_t nb,
                       const int32_t *tok, const float *const *x, float *const *out,
                       float *scratch)
{
    const int32_t hidden = model->hidden_size;
    const size_t per_stream =
        (size_t)LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(model->input_size, hidden);
    const float *in[LSTM_EDGE_BATCH_BLOCK];
    const float *hprev[LSTM_EDGE_BATCH_BLOCK];
    float *gates[LSTM_EDGE_BATCH_BLOCK];
    float *acc[LSTM_EDGE_BATCH_BLOCK];
    int32_t b, l;

    for (b = 0; b < nb; ++b) {
        float *s = scratch + (size_t)b * per_stream;
        gates[b] = s;
        acc[b] = s + 4 * (size_t)hidden;
        in[b] = layer0_input(model, tok != NULL ? &tok[b] : NULL, tok != NULL ? NULL : x[b],
                             s + 8 * (size_t)hidden);
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
    if (out != NULL) {
        head(model, nb, in, out);
        add_last_values(model, nb, x, out);
    }
}

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
    if ((tokens != NULL) != (model->task == LSTM_EDGE_TASK_CHAR_LM)) {
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
        if (states[k].h == NULL || states[k].c == NULL) {
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
    int32_t b0, b, t;
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    /* the model passed check_batch: one stream's scratch is known to fit, and not 0 */
    block = scratch_floats / (size_t)checked_scratch_per_stream(model);
    if (block > LSTM_EDGE_BATCH_BLOCK) {
        block = LSTM_EDGE_BATCH_BLOCK;
    }
    for (b0 = 0; b0 < batch; b0 += (int32_t)block) {
        const int32_t nb = batch - b0 < (int32_t)block ? batch - b0 : (int32_t)block;
        for (t = 0; t < time; ++t) {
            /* all set (one of tok / xs unused) so no compiler sees an uninitialized read */
            int32_t tok[LSTM_EDGE_BATCH_BLOCK] = {0};
            const float *xs[LSTM_EDGE_BATCH_BLOCK] = {NULL};
            float *o[LSTM_EDGE_BATCH_BLOCK] = {NULL};
            for (b = 0; b < nb; ++b) {
                const size_t bt = (size_t)(b0 + b) * (size_t)time + (size_t)t;
                tok[b] = tokens != NULL ? tokens[bt] : 0;
                xs[b] = x != NULL ? x + bt * (size_t)model->input_size : NULL;
                o[b] = out != NULL ? out + bt * (size_t)model->output_size : NULL;
            }
            step_block(model, states + b0, nb, tokens != NULL ? tok : NULL, xs,
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
