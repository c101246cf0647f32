/* main.c: run a token stream through an lstm-edge model, one step at a time.
 *
 * The same file runs on a host and on the emulated Cortex-M4 (where printf goes out through
 * semihosting). example_stream.h, written by `lstm-edge codegen`, names the model and holds
 * the token stream. Output, for tools to parse:
 *   L <step> <top-1 id> <logits as IEEE-754 bit patterns, hex>   every PRINT_EVERY steps
 *   top1 <hits>/<predictions>                                  next-token top-1 agreement
 *   ok <steps>                                                  last line on success
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "example_stream.h"

#ifndef PRINT_EVERY
#define PRINT_EVERY 64
#endif

/* Caller-owned memory, sized by the model header: no malloc anywhere in the library. */
static float state_h[EXAMPLE_STATE_FLOATS];
static float state_c[EXAMPLE_STATE_FLOATS];
static float scratch[EXAMPLE_SCRATCH_FLOATS];
static float logits[EXAMPLE_VOCAB];

static int32_t argmax(const float *v, int32_t n)
{
    int32_t best = 0, k;
    for (k = 1; k < n; ++k) {
        if (v[k] > v[best]) {
            best = k;
        }
    }
    return best;
}

static void print_logits(int32_t step, int32_t top1, const float *v)
{
    int32_t k;
    printf("L %" PRId32 " %" PRId32, step, top1);
    for (k = 0; k < EXAMPLE_VOCAB; ++k) {
        uint32_t bits;
        memcpy(&bits, &v[k], sizeof bits); /* exact, no float formatting needed */
        printf(" %08" PRIx32, bits);
    }
    printf("\n");
}

int main(void)
{
    lstm_edge_state state = {state_h, state_c};
    lstm_edge_status status = lstm_edge_check_model(&EXAMPLE_MODEL);
    int32_t t, hits = 0;

    if (status != LSTM_EDGE_OK) {
        printf("error: model check: %s\n", lstm_edge_status_str(status));
        return 1;
    }
    printf("model %s (%s): %d layers x %d hidden, vocab %d; %d tokens\n", EXAMPLE_MODEL.name,
           EXAMPLE_MODEL.scheme, (int)EXAMPLE_MODEL.num_layers, (int)EXAMPLE_MODEL.hidden_size,
           (int)EXAMPLE_MODEL.vocab_size, (int)EXAMPLE_STREAM_LEN);
    lstm_edge_reset(&EXAMPLE_MODEL, &state);
    for (t = 0; t < EXAMPLE_STREAM_LEN; ++t) {
        int32_t top1;
        status = lstm_edge_step(&EXAMPLE_MODEL, &state, example_stream[t], logits, scratch);
        if (status != LSTM_EDGE_OK) {
            printf("error: step %" PRId32 ": %s\n", t, lstm_edge_status_str(status));
            return 1;
        }
        top1 = argmax(logits, EXAMPLE_VOCAB);
        if (t + 1 < EXAMPLE_STREAM_LEN && top1 == example_stream[t + 1]) {
            ++hits;
        }
        if (t % PRINT_EVERY == 0 || t == EXAMPLE_STREAM_LEN - 1) {
            print_logits(t, top1, logits);
        }
    }
    printf("top1 %" PRId32 "/%" PRId32 "\n", hits, (int32_t)(EXAMPLE_STREAM_LEN - 1));

    /* A bad token is refused before the state is touched. */
    if (lstm_edge_step(&EXAMPLE_MODEL, &state, EXAMPLE_VOCAB, logits, scratch) !=
        LSTM_EDGE_ERR_BAD_TOKEN) {
        printf("error: an out-of-range token was not refused\n");
        return 1;
    }
    printf("ok %" PRId32 "\n", (int32_t)EXAMPLE_STREAM_LEN);
    return 0;
}
