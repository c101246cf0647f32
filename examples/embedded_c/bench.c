/* bench.c: time one model step on the host, next to a naive row-dot matrix-vector loop.
 * Works in char-lm and forecast bundles alike.
 *
 * Build inside a bundle written by `lstm-edge codegen` (it reads example_stream.h):
 *   cc -std=c99 -O3 -march=native -D_POSIX_C_SOURCE=199309L -I. \
 *      path/to/bench.c NAME_model.c lstm_edge.c -lm -o bench && ./bench
 * Prints microseconds per step (median of repeats) and, for the first layer's recurrent
 * matrix R [4H x H], the input-major kernel the library uses vs a row-dot loop
 * (sum_j R[r][j] h[j]), which compilers leave scalar without -ffast-math.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "example_stream.h"

#define REPEATS 7

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float h[EXAMPLE_STATE_FLOATS], c[EXAMPLE_STATE_FLOATS];
static float scratch[EXAMPLE_SCRATCH_FLOATS], logits[EXAMPLE_OUTPUT_SIZE];

/* One step of either task: the stream holds token ids (char-lm) or sensor rows (forecast). */
#if EXAMPLE_FORECAST
#define STEP(state, t) \
    lstm_edge_forecast_step(&EXAMPLE_MODEL, (state), example_stream[t], logits, scratch)
#else
#define STEP(state, t) lstm_edge_step(&EXAMPLE_MODEL, (state), example_stream[t], logits, scratch)
#endif

/* Row-major copy of R for the naive loop. */
#define ROWS (4 * EXAMPLE_HIDDEN)
#define COLS EXAMPLE_HIDDEN
static float r_rows[ROWS * COLS], vec[COLS], out[ROWS];

static void naive_rowdot(void)
{
    int r, j;
    for (r = 0; r < ROWS; ++r) {
        float s = 0.0f;
        for (j = 0; j < COLS; ++j) {
            s += r_rows[r * COLS + j] * vec[j];
        }
        out[r] = s;
    }
}

static void input_major(const float *w)
{
    int r, j;
    memset(out, 0, sizeof out);
    for (j = 0; j + 4 <= COLS; j += 4) {
        const float *w0 = w + j * ROWS, *w1 = w0 + ROWS, *w2 = w1 + ROWS, *w3 = w2 + ROWS;
        const float x0 = vec[j], x1 = vec[j + 1], x2 = vec[j + 2], x3 = vec[j + 3];
        for (r = 0; r < ROWS; ++r) {
            out[r] += (x0 * w0[r] + x1 * w1[r]) + (x2 * w2[r] + x3 * w3[r]);
        }
    }
}

int main(void)
{
    lstm_edge_state state = {.h = h, .c = c};
    double times[REPEATS], t0;
    int rep, t, n = EXAMPLE_STREAM_LEN;
    float sink = 0.0f;
    static float w_in_major[ROWS * COLS];

    lstm_edge_reset(&EXAMPLE_MODEL, &state);
    for (rep = 0; rep < REPEATS; ++rep) {
        t0 = now_us();
        for (t = 0; t < n; ++t) {
            STEP(&state, t);
        }
        times[rep] = (now_us() - t0) / n;
        sink += logits[0];
    }
    qsort(times, REPEATS, sizeof times[0], cmp);
    printf("step_us %.3f (%s, %d x %d)\n", times[REPEATS / 2], EXAMPLE_MODEL.scheme,
           (int)EXAMPLE_MODEL.num_layers, (int)EXAMPLE_MODEL.hidden_size);

    for (t = 0; t < ROWS * COLS; ++t) {
        r_rows[t] = (float)((t * 7919) % 1000) * 1e-3f - 0.5f;
    }
    for (t = 0; t < ROWS; ++t) {
        int j;
        for (j = 0; j < COLS; ++j) {
            w_in_major[j * ROWS + t] = r_rows[t * COLS + j];
        }
    }
    for (t = 0; t < COLS; ++t) {
        vec[t] = (float)t * 1e-3f;
    }
    for (rep = 0; rep < REPEATS; ++rep) {
        int k;
        t0 = now_us();
        for (k = 0; k < 200; ++k) {
            naive_rowdot();
            vec[k % COLS] += out[k % ROWS] * 1e-9f;
        }
        times[rep] = (now_us() - t0) / 200;
    }
    qsort(times, REPEATS, sizeof times[0], cmp);
    printf("rowdot_us %.3f (R %d x %d float32)\n", times[REPEATS / 2], ROWS, COLS);
    for (rep = 0; rep < REPEATS; ++rep) {
        int k;
        t0 = now_us();
        for (k = 0; k < 200; ++k) {
            input_major(w_in_major);
            vec[k % COLS] += out[k % ROWS] * 1e-9f;
        }
        times[rep] = (now_us() - t0) / 200;
    }
    qsort(times, REPEATS, sizeof times[0], cmp);
    printf("input_major_us %.3f\n", times[REPEATS / 2]);
    return sink == 12345.0f; /* keep the work observable */
}
