/* api_highway_test.c: the C API's contract for a forecast model with a linear highway, as a
 * user's program sees it. Built by test_forecast_highway_c.py inside a generated bundle of
 * such a model (example_stream.h names it and holds raw feature rows; N rows at least).
 * Exits 0 and prints "api ok" when every check holds; otherwise names the first failed
 * check. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "example_stream.h"

#define N 80 /* more steps than the lags of the tested models (5 and 53) */
#define B 3
#define SF EXAMPLE_STATE_FLOATS
#define HF EXAMPLE_HISTORY_FLOATS
#define F EXAMPLE_INPUT_SIZE
#define O EXAMPLE_OUTPUT_SIZE

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            printf("FAILED line %d: %s\n", __LINE__, #cond);          \
            return 1;                                                 \
        }                                                             \
    } while (0)

static float h1[SF], c1[SF], g1[HF], h2[SF], c2[SF], g2[HF];
static float hb[B][SF], cb[B][SF], gb[B][HF];
static float scratch[EXAMPLE_SCRATCH_FLOATS * LSTM_EDGE_BATCH_BLOCK];
static float out1[N][O], out2[N][O], out_b[B][N][O];
static float xs[B][N][F];

static int all_equal(const float *a, float v, size_t n)
{
    size_t k;
    for (k = 0; k < n; ++k) {
        if (a[k] != v) {
            return 0;
        }
    }
    return 1;
}

int main(void)
{
    const lstm_edge_model *m = &EXAMPLE_MODEL;
    const lstm_edge_highway *hw = &m->output.highway;
    lstm_edge_state s1 = {.h = h1, .c = c1, .history = g1};
    lstm_edge_state s2 = {.h = h2, .c = c2, .history = g2};
    lstm_edge_state no_hist = {.h = h2, .c = c2, .history = NULL}, sb[B];
    lstm_edge_model broken = EXAMPLE_MODEL;
    int32_t t, b, o, r;

    CHECK(lstm_edge_check_model(m) == LSTM_EDGE_OK);
    CHECK(hw->lags >= 1 && hw->n_outputs == O);
    CHECK((size_t)HF == 1 + (size_t)hw->lags * (size_t)O);
    CHECK(lstm_edge_history_floats(m) == (size_t)HF);
    CHECK(lstm_edge_history_floats(NULL) == 0);

    /* check_model looks at the highway */
    broken.output.highway.lags += 1; /* weight no longer [O][lags + 1] */
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    CHECK(lstm_edge_history_floats(&broken) == 0);
    broken = EXAMPLE_MODEL;
    broken.output.highway.n_outputs = O - 1;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.output.highway.bias = NULL;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.output.highway.n_select = 0;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    {
        int32_t bad_select[O];
        memcpy(bad_select, hw->select, sizeof bad_select);
        bad_select[O - 1] = F; /* past the last feature column */
        broken.output.highway.select = bad_select;
        CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
        bad_select[O - 1] = -1;
        CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    }
    broken = EXAMPLE_MODEL;
    broken.output.highway.lags = 0; /* "no highway" with its arrays still set */
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.task = LSTM_EDGE_TASK_CLASSIFY; /* only forecast models have a highway */
    broken.output.denormalize = (lstm_edge_affine){NULL, NULL, 0, 0};
    broken.output.last_index = NULL;
    broken.output.n_last_index = 0;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken.output.highway = (lstm_edge_highway){0, 0, NULL, NULL, NULL, 0, 0, 0};
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_OK); /* the same, without it */

    for (b = 0; b < B; ++b) {
        for (t = 0; t < N; ++t) {
            memcpy(xs[b][t], example_stream[(b * 7 + t) % EXAMPLE_STREAM_LEN], sizeof xs[b][t]);
        }
    }

    /* a NULL history is refused by every function, before anything is written */
    for (t = 0; t < SF; ++t) {
        h2[t] = 0.25f, c2[t] = -0.5f;
    }
    out1[0][0] = 42.0f;
    CHECK(lstm_edge_reset(m, &no_hist) == LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_check_state(m, &no_hist) == LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_forecast_step(m, &no_hist, xs[0][0], out1[0], scratch) ==
          LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_forecast_step_many(m, &no_hist, xs[0][0], 4, out1[0], scratch) ==
          LSTM_EDGE_ERR_NULL);
    CHECK(all_equal(h2, 0.25f, SF) && all_equal(c2, -0.5f, SF) && out1[0][0] == 42.0f);
    /* one stream of a batch without its history: no stream is touched */
    sb[0] = s1, sb[1] = no_hist, sb[2] = s1;
    for (t = 0; t < HF; ++t) {
        g1[t] = 3.0f;
    }
    CHECK(lstm_edge_forecast_step_batch(m, sb, B, &xs[0][0][0], 1, &out_b[0][0][0], scratch,
                                        sizeof scratch / sizeof scratch[0]) ==
          LSTM_EDGE_ERR_NULL);
    CHECK(all_equal(g1, 3.0f, HF) && all_equal(h2, 0.25f, SF));

    /* reset zeroes the history; check_state looks at it */
    CHECK(lstm_edge_reset(m, &s1) == LSTM_EDGE_OK);
    CHECK(all_equal(g1, 0.0f, HF) && all_equal(h1, 0.0f, SF) && all_equal(c1, 0.0f, SF));
    CHECK(lstm_edge_check_state(m, &s1) == LSTM_EDGE_OK);
    g1[HF - 1] = (float)NAN;
    CHECK(lstm_edge_check_state(m, &s1) == LSTM_EDGE_ERR_NONFINITE_STATE);
    g1[HF - 1] = (float)INFINITY;
    CHECK(lstm_edge_check_state(m, &s1) == LSTM_EDGE_ERR_NONFINITE_STATE);
    CHECK(lstm_edge_reset(m, &s1) == LSTM_EDGE_OK);

    /* the first step after a reset: seen becomes 1 and every row is the target's
     * normalized value (the past filled with it, then shifted) */
    CHECK(lstm_edge_forecast_step(m, &s1, xs[0][0], out1[0], scratch) == LSTM_EDGE_OK);
    CHECK(g1[0] == 1.0f);
    for (o = 0; o < O; ++o) {
        const int32_t col = hw->select[o];
        volatile float product = xs[0][0][col] * m->input.normalize.scale[col];
        const float v = product + m->input.normalize.shift[col];
        for (r = 0; r < hw->lags; ++r) {
            CHECK(g1[1 + r * O + o] == v);
        }
    }

    /* N single steps == one run of N steps, bit for bit (outputs, h, c and history) */
    CHECK(lstm_edge_reset(m, &s1) == LSTM_EDGE_OK && lstm_edge_reset(m, &s2) == LSTM_EDGE_OK);
    for (t = 0; t < N; ++t) {
        CHECK(lstm_edge_forecast_step(m, &s1, xs[0][t], out1[t], scratch) == LSTM_EDGE_OK);
    }
    CHECK(lstm_edge_forecast_step_many(m, &s2, &xs[0][0][0], N, &out2[0][0], scratch) ==
          LSTM_EDGE_OK);
    CHECK(memcmp(out1, out2, sizeof out1) == 0);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);
    CHECK(memcmp(g1, g2, sizeof g1) == 0);

    /* out NULL (warming a stream up) advances the history exactly as with outputs */
    CHECK(lstm_edge_reset(m, &s2) == LSTM_EDGE_OK);
    CHECK(lstm_edge_forecast_step_many(m, &s2, &xs[0][0][0], N, NULL, scratch) == LSTM_EDGE_OK);
    CHECK(memcmp(g1, g2, sizeof g1) == 0 && memcmp(h1, h2, sizeof h1) == 0);

    /* a batch of B streams == each stream on its own, with the batch scratch and with one
     * lane's (the results do not depend on the scratch lent) */
    for (b = 0; b < B; ++b) {
        sb[b].h = hb[b], sb[b].c = cb[b], sb[b].history = gb[b];
        CHECK(lstm_edge_reset(m, &sb[b]) == LSTM_EDGE_OK);
    }
    CHECK(lstm_edge_forecast_step_batch(m, sb, B, &xs[0][0][0], N, &out_b[0][0][0], scratch,
                                        sizeof scratch / sizeof scratch[0]) == LSTM_EDGE_OK);
    for (b = 0; b < B; ++b) {
        CHECK(lstm_edge_reset(m, &s1) == LSTM_EDGE_OK);
        CHECK(lstm_edge_forecast_step_many(m, &s1, &xs[b][0][0], N, &out1[0][0], scratch) ==
              LSTM_EDGE_OK);
        CHECK(memcmp(out1, out_b[b], sizeof out1) == 0);
        CHECK(memcmp(g1, gb[b], sizeof g1) == 0 && memcmp(h1, hb[b], sizeof h1) == 0);
    }
    for (b = 0; b < B; ++b) {
        CHECK(lstm_edge_reset(m, &sb[b]) == LSTM_EDGE_OK);
    }
    CHECK(lstm_edge_forecast_step_batch(m, sb, B, &xs[0][0][0], N, &out_b[0][0][0], scratch,
                                        EXAMPLE_SCRATCH_FLOATS) == LSTM_EDGE_OK);
    CHECK(memcmp(out1, out_b[B - 1], sizeof out1) == 0 && memcmp(g1, gb[B - 1], sizeof g1) == 0);

    /* a reset stream starts over: the same outputs as the first time */
    CHECK(lstm_edge_reset(m, &s2) == LSTM_EDGE_OK);
    CHECK(lstm_edge_forecast_step_many(m, &s2, &xs[B - 1][0][0], N, &out2[0][0], scratch) ==
          LSTM_EDGE_OK);
    CHECK(memcmp(out1, out2, sizeof out1) == 0);

    printf("api ok\n");
    return 0;
}
