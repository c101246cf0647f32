/* main.c: run an input stream through an lstm-edge model, one step at a time.
 *
 * The same file runs on a host and on the emulated Cortex-M4 (where printf goes out through
 * semihosting), for both tasks. example_stream.h, written by `lstm-edge codegen`, names the
 * model, says its task (EXAMPLE_FORECAST) and holds the stream: token ids (char-lm) or rows
 * of raw sensor values (forecast). Output, for tools to parse:
 *   L <step> <top-1 id> <logits as IEEE-754 bit patterns, hex>   char-lm, every PRINT_EVERY steps
 *   F <step> <forecast as IEEE-754 bit patterns, hex>             forecast, every PRINT_EVERY steps
 *   top1 <hits>/<predictions>                                   char-lm: next-token top-1 agreement
 *   ticks <board timer ticks in the step calls> <steps>          with COUNT_TICKS (see below)
 *   calibration <ticks> <instructions>                           with COUNT_TICKS
 *   ok <steps>                                                   last line on success
 *
 * A forecast model with a linear highway (EXAMPLE_HISTORY_FLOATS > 0) keeps the history of
 * its past target values in the state too (state_history below, zeroed by the reset).
 *
 * An int8-full model (EXAMPLE_INT8_FULL) runs through the integer library (lstm_edge_int.h):
 * int8 h and int16 c state, int16 scratch; the same stream, the same output lines.
 *
 * COUNT_TICKS (the board builds for counting instructions): the board's free-running
 * timer (board_ticks, board/startup.c) is read just before and after every step call, so
 * only the library's step is counted, not the printing; and a calibration loop of a known
 * instruction count reads it the same way. Under `qemu-system-arm -icount shift=0` the
 * virtual clock advances exactly 1 ns per executed instruction, so ticks convert to
 * instructions by the calibration's ratio (the board timer runs at 25 MHz: 40 per tick).
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
#if EXAMPLE_INT8_FULL
static int8_t state_h[EXAMPLE_STATE_SIZE];
static int16_t state_c[EXAMPLE_STATE_SIZE];
static int16_t scratch[EXAMPLE_SCRATCH_SIZE];
#if EXAMPLE_HISTORY_SIZE > 0 /* the forecast highway's float32 history */
static float state_history[EXAMPLE_HISTORY_SIZE];
#define STATE_INIT {.h = state_h, .c = state_c, .history = state_history}
#else
#define STATE_INIT {.h = state_h, .c = state_c, .history = NULL}
#endif
typedef lstm_edge_int_state example_state;
#define CHECK_MODEL lstm_edge_int_check_model
#define RESET lstm_edge_int_reset
#define TOKEN_STEP lstm_edge_int_step
#define ROW_STEP lstm_edge_int_forecast_step
#else
static float state_h[EXAMPLE_STATE_FLOATS];
static float state_c[EXAMPLE_STATE_FLOATS];
static float scratch[EXAMPLE_SCRATCH_FLOATS];
#if EXAMPLE_HISTORY_FLOATS > 0 /* the forecast highway's history */
static float state_history[EXAMPLE_HISTORY_FLOATS];
#define STATE_INIT {.h = state_h, .c = state_c, .history = state_history}
#else
#define STATE_INIT {.h = state_h, .c = state_c, .history = NULL}
#endif
typedef lstm_edge_state example_state;
#define CHECK_MODEL lstm_edge_check_model
#define RESET lstm_edge_reset
#define TOKEN_STEP lstm_edge_step
#define ROW_STEP lstm_edge_forecast_step
#endif
static float outputs[EXAMPLE_OUTPUT_SIZE]; /* logits or raw target predictions */

#ifdef COUNT_TICKS
extern uint32_t board_ticks(void); /* a down-counting timer of the board */
static uint32_t ticks;             /* in the step calls so far */
#define TIMED(call)                                                                          \
    do {                                                                                     \
        const uint32_t t0_ = board_ticks();                                                  \
        call;                                                                                \
        ticks += t0_ - board_ticks();                                                        \
    } while (0)

/* Ticks of a loop of exactly 3 * n + 1 instructions (mov, then subs, nop, bne per
 * iteration) between two timer reads, the way TIMED reads them: what a tick is. */
static void calibrate(void)
{
    const uint32_t n = 1000000;
    uint32_t t0, t1;
    t0 = board_ticks();
    __asm__ volatile("mov r0, %0\n"
                     "1: subs r0, r0, #1\n"
                     "nop\n"
                     "bne 1b\n" ::"r"(n)
                     : "r0", "cc");
    t1 = board_ticks();
    printf("calibration %lu %lu\n", (unsigned long)(t0 - t1), (unsigned long)(3 * n + 1));
}
#else
#define TIMED(call) call
#endif

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
static lstm_edge_status step(example_state *state, int32_t t)
{
    lstm_edge_status status;
    TIMED(status = ROW_STEP(&EXAMPLE_MODEL, state, example_stream[t], outputs, scratch));
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
static int refuses_bad_input(example_state *state)
{
    float row[EXAMPLE_INPUT_SIZE];
    memcpy(row, example_stream[0], sizeof row);
    row[EXAMPLE_INPUT_SIZE - 1] = (float)NAN;
    return ROW_STEP(&EXAMPLE_MODEL, state, row, outputs, scratch) ==
               LSTM_EDGE_ERR_NONFINITE_INPUT &&
           TOKEN_STEP(&EXAMPLE_MODEL, state, 0, outputs, scratch) == LSTM_EDGE_ERR_WRONG_TASK;
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
static lstm_edge_status step(example_state *state, int32_t t)
{
    int32_t top1;
    lstm_edge_status status;
    TIMED(status = TOKEN_STEP(&EXAMPLE_MODEL, state, example_stream[t], outputs, scratch));
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
    printf("vocabulary of %d tokens\n", (int)EXAMPLE_VOCAB);
}

/* A bad token is refused before the state is touched. */
static int refuses_bad_input(example_state *state)
{
    return TOKEN_STEP(&EXAMPLE_MODEL, state, EXAMPLE_VOCAB, outputs, scratch) ==
           LSTM_EDGE_ERR_BAD_TOKEN;
}

#endif /* EXAMPLE_FORECAST */

int main(void)
{
    example_state state = STATE_INIT;
    lstm_edge_status status = CHECK_MODEL(&EXAMPLE_MODEL);
    int32_t t;

    if (status != LSTM_EDGE_OK) {
        printf("error: model check: %s\n", lstm_edge_status_str(status));
        return 1;
    }
    printf("model %s (%s): %d layers x %d hidden; %d steps; ", EXAMPLE_MODEL.name,
           EXAMPLE_MODEL.scheme, (int)EXAMPLE_MODEL.num_layers, (int)EXAMPLE_MODEL.hidden_size,
           (int)EXAMPLE_STREAM_LEN);
    describe();
#ifdef COUNT_TICKS
    calibrate();
#endif
    RESET(&EXAMPLE_MODEL, &state);
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
#ifdef COUNT_TICKS
    printf("ticks %lu %ld\n", (unsigned long)ticks, (long)EXAMPLE_STREAM_LEN);
#endif
    printf("ok %" PRId32 "\n", (int32_t)EXAMPLE_STREAM_LEN);
    return 0;
}
