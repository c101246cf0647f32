/* main.c: run an input stream through an lstm-edge model, one step at a time.
 *
 * The same file runs on a host and on the emulated Cortex-M4 (where printf goes out through
 * semihosting), for both tasks. example_stream.h, written by `lstm-edge codegen`, names the
 * model, says its task (EXAMPLE_FORECAST) and holds the stream: token ids (char-lm) or rows
 * of raw sensor values (forecast). Output, for tools to parse:
 *   L <step> <top-1 id> <logits as IEEE-754 bit patterns, hex>   char-lm, every PRINT_EVERY steps
 *   F <step> <forecast as IEEE-754 bit patterns, hex>             forecast, every PRINT_EVERY steps
 *   top1 <hits>/<predictions>                                   char-lm: next-token top-1 agreement
 *   ok <steps>                                                   last line on success
 */
#include <inttypes.h>
#include <math.h>
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
static float outputs[EXAMPLE_OUTPUT_SIZE]; /* logits or raw target predictions */

/* "<tag> <step> [<top-1>] <values as bit patterns>"; top1 < 0: not printed. */
static void print_values(const char *tag, int32_t step, int32_t top1, const float *v)
{
    int32_t k;
    printf("%s %" PRId32, tag, step);
    if (top1 >= 0) {
        printf(" %" PRId32, top1);
    }
    for (k = 0; k < EXAMPLE_OUTPUT_SIZE; ++k) {
        uint32_t bits;
        memcpy(&bits, &v[k], sizeof bits); /* exact, no float formatting needed */
        printf(" %08" PRIx32, bits);
    }
    printf("\n");
}

#if EXAMPLE_FORECAST

/* Forecast: one row of raw feature values in, the targets EXAMPLE_HORIZON steps later out. */
static lstm_edge_status step(lstm_edge_state *state, int32_t t)
{
    lstm_edge_status status =
        lstm_edge_forecast_step(&EXAMPLE_MODEL, state, example_stream[t], outputs, scratch);
    if (status == LSTM_EDGE_OK && (t % PRINT_EVERY == 0 || t == EXAMPLE_STREAM_LEN - 1)) {
        print_values("F", t, -1, outputs);
    }
    return status;
}

static void describe(void)
{
    int32_t k;
    printf("forecasts %d steps ahead of:", (int)EXAMPLE_HORIZON);
    for (k = 0; k < EXAMPLE_OUTPUT_SIZE; ++k) {
        printf(" %s", EXAMPLE_TARGET_NAMES[k]);
    }
    printf("\n");
}

/* Bad input is refused before the state is touched: a NaN sensor value, a token step. */
static int refuses_bad_input(lstm_edge_state *state)
{
    float row[EXAMPLE_INPUT_SIZE];
    memcpy(row, example_stream[0], sizeof row);
    row[EXAMPLE_INPUT_SIZE - 1] = (float)NAN;
    return lstm_edge_forecast_step(&EXAMPLE_MODEL, state, row, outputs, scratch) ==
               LSTM_EDGE_ERR_NONFINITE_INPUT &&
           lstm_edge_step(&EXAMPLE_MODEL, state, 0, outputs, scratch) ==
               LSTM_EDGE_ERR_WRONG_TASK;
}

#else

static int32_t hits;

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

/* char-lm: one token in, logits over the next token out. */
static lstm_edge_status step(lstm_edge_state *state, int32_t t)
{
    int32_t top1;
    lstm_edge_status status =
        lstm_edge_step(&EXAMPLE_MODEL, state, example_stream[t], outputs, scratch);
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    top1 = argmax(outputs, EXAMPLE_OUTPUT_SIZE);
    if (t + 1 < EXAMPLE_STREAM_LEN && top1 == example_stream[t + 1]) {
        ++hits;
    }
    if (t % PRINT_EVERY == 0 || t == EXAMPLE_STREAM_LEN - 1) {
        print_values("L", t, top1, outputs);
    }
    if (t == EXAMPLE_STREAM_LEN - 1) {
        printf("top1 %" PRId32 "/%" PRId32 "\n", hits, (int32_t)(EXAMPLE_STREAM_LEN - 1));
    }
    return status;
}

static void describe(void)
{
    printf("vocabulary of %d tokens\n", (int)EXAMPLE_MODEL.input.embedding.vocab_size);
}

/* A bad token is refused before the state is touched. */
static int refuses_bad_input(lstm_edge_state *state)
{
    return lstm_edge_step(&EXAMPLE_MODEL, state, EXAMPLE_VOCAB, outputs, scratch) ==
           LSTM_EDGE_ERR_BAD_TOKEN;
}

#endif /* EXAMPLE_FORECAST */

int main(void)
{
    lstm_edge_state state = {state_h, state_c};
    lstm_edge_status status = lstm_edge_check_model(&EXAMPLE_MODEL);
    int32_t t;

    if (status != LSTM_EDGE_OK) {
        printf("error: model check: %s\n", lstm_edge_status_str(status));
        return 1;
    }
    printf("model %s (%s): %d layers x %d hidden; %d steps; ", EXAMPLE_MODEL.name,
           EXAMPLE_MODEL.scheme, (int)EXAMPLE_MODEL.num_layers, (int)EXAMPLE_MODEL.hidden_size,
           (int)EXAMPLE_STREAM_LEN);
    describe();
    lstm_edge_reset(&EXAMPLE_MODEL, &state);
    for (t = 0; t < EXAMPLE_STREAM_LEN; ++t) {
        status = step(&state, t);
        if (status != LSTM_EDGE_OK) {
            printf("error: step %" PRId32 ": %s\n", t, lstm_edge_status_str(status));
            return 1;
        }
    }
    if (!refuses_bad_input(&state)) {
        printf("error: bad input was not refused\n");
        return 1;
    }
    printf("ok %" PRId32 "\n", (int32_t)EXAMPLE_STREAM_LEN);
    return 0;
}
