/* lstm_edge_web.c: the C library's char-lm step, exported to JavaScript from a
 * WebAssembly module (lstm-edge web; see toolchain/web.py).
 *
 * The module is runtime/c/lstm_edge.c plus the model's generated data (named `net`, see
 * runtime/backends/c_source.py) plus this shim, compiled by clang for wasm32 with no
 * entry point. JavaScript owns the beams' states (as the Python engine does); per call it
 * copies a batch of states into buffers it allocated here with web_alloc, the step
 * advances them in place and writes the logits. Nothing here needs a WASI import: the
 * library uses <math.h> and <string.h> only, malloc grows the linear memory itself.
 */
#include <stdlib.h>

#include "lstm_edge.h"
#include "net_model.h"

/* Sizes the JavaScript side allocates with. */
int32_t web_vocab_size(void) { return NET_OUTPUT_SIZE; }
int32_t web_state_floats(void) { return NET_STATE_FLOATS; }
int32_t web_batch_scratch_floats(void) { return NET_BATCH_SCRATCH_FLOATS; }
int32_t web_check_model(void) { return (int32_t)lstm_edge_check_model(&net_model); }

/* Linear memory for JavaScript's buffers (tokens, states, logits, scratch). */
void *web_alloc(int32_t bytes) { return bytes > 0 ? malloc((size_t)bytes) : NULL; }
void web_free(void *p) { free(p); }

/* Zero `batch` states: h and c are [batch][NET_STATE_FLOATS] (lstm_edge_reset each). */
int32_t web_init_state(float *h, float *c, int32_t batch)
{
    int32_t b;
    for (b = 0; b < batch; ++b) {
        lstm_edge_state s = {h + (size_t)b * NET_STATE_FLOATS, c + (size_t)b * NET_STATE_FLOATS};
        lstm_edge_status st = lstm_edge_reset(&net_model, &s);
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
    st = lstm_edge_step_batch(&net_model, states, batch, tokens, time, logits, scratch,
                              (size_t)scratch_floats);
    free(states);
    return (int32_t)st;
}
