/* lstm_edge_web.c: the C library's char-lm step, exported to JavaScript from a
 * WebAssembly module (lstm-edge web; see toolchain/web.py).
 *
 * The module is runtime/c/lstm_edge.c plus the model's generated data (named `net`, see
 * runtime/backends/c_source.py) plus this shim, compiled by clang for wasm32 with no
 * entry point. JavaScript owns the beams' states (as the Python engine does); per call it
 * copies a batch of states into buffers it allocated here with web_alloc, the step
 * advances them in place and writes the logits. Nothing here needs a WASI import: the
 * library uses <math.h> and <string.h> only, malloc grows the linear memory itself.
 *
 * int8 weight-only models are widened to float32 once, at start-up (web_prepare): the
 * download stays int8 (a quarter of the bytes), and the steps take the float kernels,
 * which WebAssembly's 128-bit SIMD runs ~2x faster than the int8 ones (each int8 weight
 * is converted to float on every use there). The widened weight is q * scale, the float32
 * value the numpy reference computes with; the matrices keep the int8 input-major order,
 * which is a float matrix of one panel (lstm_edge_matrix, panel 0).
 */
#include <stdlib.h>

#include "lstm_edge.h"
#include "net_model.h"

static lstm_edge_model widened;          /* the int8 model as float32 (web_prepare) */
static lstm_edge_model tabled;           /* ... with its token gate table (web_prepare) */
static const lstm_edge_model *model = &net_model;  /* the model every step runs */

/* f[i] = q[i] * scale[row of i]: rows of `per_row` values (embedding, [V][E]) when
 * per_row > 0, else columns of an input-major matrix (element i's row is i % rows). */
static float *widen(const int8_t *q, const float *scale, size_t n, int32_t rows,
                    int32_t per_row)
{
    float *f = (float *)malloc(sizeof(float) * (n ? n : 1));
    size_t i;
    if (f == NULL) {
        return NULL;
    }
    for (i = 0; i < n; ++i) {
        const size_t r = per_row > 0 ? i / (size_t)per_row : i % (size_t)rows;
        f[i] = (float)q[i] * scale[r];
    }
    return f;
}

static int widen_matrix(lstm_edge_matrix *m)
{
    float *f;
    if (m->q == NULL) {
        return 1;
    }
    f = widen(m->q, m->scale, m->n_values, m->rows, 0);
    if (f == NULL) {
        return 0;
    }
    m->f32 = f;
    m->q = NULL;
    m->scale = NULL;
    m->n_scale = 0;
    m->panel = 0;
    return 1;
}

/* Layer 0's gate inputs per token, computed once (lstm_edge_token_gates: the numbers a
 * step computes, bit for bit), so a step copies a row instead of a matrix-vector product. */
static int32_t with_token_gates(void)
{
    const size_t rows = (size_t)NET_VOCAB * 4 * (size_t)NET_HIDDEN;
    const size_t scratch_floats = (size_t)LSTM_EDGE_BATCH_BLOCK * (size_t)NET_INPUT_SIZE;
    float *table = (float *)malloc(sizeof(float) * rows);
    float *scratch = (float *)malloc(sizeof(float) * scratch_floats);
    lstm_edge_status st = LSTM_EDGE_ERR_BAD_SIZE; /* out of memory */
    if (table != NULL && scratch != NULL) {
        st = lstm_edge_token_gates(model, table, rows, scratch, scratch_floats, &tabled);
    }
    free(scratch);
    if (st != LSTM_EDGE_OK) {
        free(table);
        return (int32_t)st;
    }
    model = &tabled;
    return (int32_t)lstm_edge_check_model(model);
}

/* Call once before stepping: checks the model data, widens its int8 matrices and
 * embedding (see the top; a float model's are kept), computes the token gate table, and
 * checks the model that will run (lstm_edge_check_model's status). */
int32_t web_prepare(void)
{
    lstm_edge_layer *layers;
    lstm_edge_embedding *emb;
    int32_t l, ok = 1;
    lstm_edge_status st = lstm_edge_check_model(model);
    if (st != LSTM_EDGE_OK || model != &net_model) { /* bad data, or prepared already */
        return (int32_t)st;
    }
    widened = net_model;
    layers = (lstm_edge_layer *)malloc(sizeof(lstm_edge_layer) * (size_t)net_model.num_layers);
    if (layers == NULL) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (l = 0; l < net_model.num_layers; ++l) {
        layers[l] = net_model.layers[l];
        ok = ok && widen_matrix(&layers[l].w) && widen_matrix(&layers[l].r);
    }
    ok = ok && widen_matrix(&widened.head);
    emb = &widened.input.embedding;
    if (ok && emb->q != NULL) {
        float *f = widen(emb->q, emb->scale, emb->n_values, 0, emb->embed_size);
        ok = f != NULL;
        emb->f32 = f;
        emb->q = NULL;
        emb->scale = NULL;
        emb->n_scale = 0;
    }
    if (!ok) {
        return LSTM_EDGE_ERR_BAD_SIZE; /* out of memory */
    }
    widened.layers = layers;
    model = &widened;
    return with_token_gates();
}

/* Sizes the JavaScript side allocates with. */
int32_t web_vocab_size(void) { return NET_OUTPUT_SIZE; }
int32_t web_state_floats(void) { return NET_STATE_FLOATS; }
int32_t web_batch_scratch_floats(void) { return NET_BATCH_SCRATCH_FLOATS; }

/* Linear memory for JavaScript's buffers (tokens, states, logits, scratch). */
void *web_alloc(int32_t bytes) { return bytes > 0 ? malloc((size_t)bytes) : NULL; }
void web_free(void *p) { free(p); }

/* Zero `batch` states: h and c are [batch][NET_STATE_FLOATS] (lstm_edge_reset each). */
int32_t web_init_state(float *h, float *c, int32_t batch)
{
    int32_t b;
    for (b = 0; b < batch; ++b) {
        lstm_edge_state s = {h + (size_t)b * NET_STATE_FLOATS, c + (size_t)b * NET_STATE_FLOATS};
        lstm_edge_status st = lstm_edge_reset(model, &s);
        if (st != LSTM_EDGE_OK) {
            return (int32_t)st;
        }
    }
    return LSTM_EDGE_OK;
}

/* `batch` streams of `time` tokens each (tokens [batch][time]) from the states h, c
 * ([batch][NET_STATE_FLOATS] each, advanced in place): logits [batch][time][V].
 * lstm_edge_step_batch does the work; this only points its states into h and c. */
int32_t web_step(int32_t batch, int32_t time, const int32_t *tokens, float *h, float *c,
                 float *logits, float *scratch, int32_t scratch_floats)
{
    lstm_edge_state *states;
    lstm_edge_status st;
    int32_t b;
    if (batch < 1) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    states = (lstm_edge_state *)malloc(sizeof(lstm_edge_state) * (size_t)batch);
    if (states == NULL) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (b = 0; b < batch; ++b) {
        states[b].h = h + (size_t)b * NET_STATE_FLOATS;
        states[b].c = c + (size_t)b * NET_STATE_FLOATS;
    }
    st = lstm_edge_step_batch(model, states, batch, tokens, time, logits, scratch,
                              (size_t)scratch_floats);
    free(states);
    return (int32_t)st;
}
