/* api_forecast_test.c: the C API's contract for forecast models, as a user's program sees
 * it. Built by test_forecast_c.py inside a generated forecast bundle (example_stream.h names
 * the model and holds raw feature rows). Exits 0 and prints "api ok" when every check
 * holds; otherwise names the first failed check. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "example_stream.h"

#define N 40
#define B 6 /* more than LSTM_EDGE_BATCH_BLOCK: one full block and a partial one */
#define SF EXAMPLE_STATE_FLOATS
#define F EXAMPLE_INPUT_SIZE
#define O EXAMPLE_OUTPUT_SIZE

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            printf("FAILED line %d: %s\n", __LINE__, #cond);          \
            return 1;                                                 \
        }                                                             \
    } while (0)

static float h1[SF], c1[SF], h2[SF], c2[SF];
static float hb[B][SF], cb[B][SF];
static float scratch[EXAMPLE_SCRATCH_FLOATS * LSTM_EDGE_BATCH_BLOCK];
static float out1[N][O], out2[N][O], out_b[B][N][O];
static float xs[B][N][F], bad[3][F];
static const int32_t token[1] = {0};

int main(void)
{
    const lstm_edge_model *m = &EXAMPLE_MODEL;
    lstm_edge_state s1 = {.h = h1, .c = c1}, s2 = {.h = h2, .c = c2}, sb[B];
    lstm_edge_model broken = EXAMPLE_MODEL;
    int32_t t, b;

    CHECK(m->task == LSTM_EDGE_TASK_FORECAST && m->input_size == F && m->output_size == O);
    CHECK(lstm_edge_check_model(m) == LSTM_EDGE_OK);
    /* check_model looks at the forecast fields */
    broken.input.normalize.scale = NULL;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.output.denormalize.shift = NULL;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.task = LSTM_EDGE_TASK_CHAR_LM; /* no embedding, norm arrays set */
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.task = (lstm_edge_task)7;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.input_size += 1; /* no longer the first layer's input width */
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.output_size += 1;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.input.embedding.vocab_size = 5;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);

    CHECK(lstm_edge_reset(m, &s1) == LSTM_EDGE_OK);
    CHECK(lstm_edge_reset(m, &s2) == LSTM_EDGE_OK);

    /* N single steps == one step_many call, bit for bit */
    for (t = 0; t < N; ++t) {
        CHECK(lstm_edge_forecast_step(m, &s1, example_stream[t], out1[t], scratch) ==
              LSTM_EDGE_OK);
    }
    CHECK(lstm_edge_forecast_step_many(m, &s2, &example_stream[0][0], N, &out2[0][0],
                                       scratch) == LSTM_EDGE_OK);
    CHECK(memcmp(out1, out2, sizeof out1) == 0);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* NULL out: the state advances the same (warming up on history) */
    lstm_edge_reset(m, &s2);
    CHECK(lstm_edge_forecast_step_many(m, &s2, &example_stream[0][0], N, NULL, scratch) ==
          LSTM_EDGE_OK);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* The wrong task's step functions: refused, the state untouched */
    CHECK(lstm_edge_step(m, &s2, 0, out2[0], scratch) == LSTM_EDGE_ERR_WRONG_TASK);
    CHECK(lstm_edge_step_many(m, &s2, token, 1, out2[0], scratch) ==
          LSTM_EDGE_ERR_WRONG_TASK);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* NaN or Inf anywhere in the input: refused before any state is written */
    memcpy(bad[0], example_stream[0], sizeof bad[0]);
    memcpy(bad[1], example_stream[1], sizeof bad[1]);
    memcpy(bad[2], example_stream[2], sizeof bad[2]);
    bad[1][F - 1] = (float)NAN;
    CHECK(lstm_edge_forecast_step_many(m, &s2, &bad[0][0], 3, &out2[0][0], scratch) ==
          LSTM_EDGE_ERR_NONFINITE_INPUT);
    bad[1][F - 1] = example_stream[1][F - 1];
    bad[2][0] = (float)INFINITY;
    CHECK(lstm_edge_forecast_step_many(m, &s2, &bad[0][0], 3, &out2[0][0], scratch) ==
          LSTM_EDGE_ERR_NONFINITE_INPUT);
    CHECK(lstm_edge_forecast_step(m, &s2, bad[2], out2[0], scratch) ==
          LSTM_EDGE_ERR_NONFINITE_INPUT);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* Batched streams == each stream alone; scratch for one stream still works */
    for (b = 0; b < B; ++b) {
        sb[b].h = hb[b];
        sb[b].c = cb[b];
        sb[b].history = NULL;
        lstm_edge_reset(m, &sb[b]);
        for (t = 0; t < N; ++t) {
            memcpy(xs[b][t], example_stream[(b * 7 + t) % EXAMPLE_STREAM_LEN], sizeof xs[b][t]);
        }
    }
    CHECK(lstm_edge_forecast_step_batch(m, sb, B, &xs[0][0][0], N, &out_b[0][0][0], scratch,
                                        sizeof scratch / sizeof scratch[0]) == LSTM_EDGE_OK);
    for (b = 0; b < B; ++b) {
        lstm_edge_reset(m, &s2);
        CHECK(lstm_edge_forecast_step_many(m, &s2, &xs[b][0][0], N, &out2[0][0], scratch) ==
              LSTM_EDGE_OK);
        CHECK(memcmp(out_b[b], out2, sizeof out2) == 0);
        CHECK(memcmp(hb[b], h2, sizeof h2) == 0 && memcmp(cb[b], c2, sizeof c2) == 0);
    }
    CHECK(lstm_edge_forecast_step_batch(m, sb, B, &xs[0][0][0], N, NULL, scratch,
                                        EXAMPLE_SCRATCH_FLOATS) == LSTM_EDGE_OK);
    CHECK(lstm_edge_forecast_step_batch(m, sb, B, &xs[0][0][0], N, NULL, scratch,
                                        EXAMPLE_SCRATCH_FLOATS - 1) == LSTM_EDGE_ERR_BAD_SIZE);
    CHECK(lstm_edge_forecast_step_batch(m, sb, -1, &xs[0][0][0], N, NULL, scratch,
                                        EXAMPLE_SCRATCH_FLOATS) == LSTM_EDGE_ERR_BAD_SIZE);

    /* NULLs */
    CHECK(lstm_edge_forecast_step(NULL, &s1, example_stream[0], out1[0], scratch) ==
          LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_forecast_step(m, &s1, NULL, out1[0], scratch) == LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_forecast_step(m, &s1, example_stream[0], out1[0], NULL) ==
          LSTM_EDGE_ERR_NULL);
    CHECK(strcmp(lstm_edge_status_str(LSTM_EDGE_ERR_WRONG_TASK), "ok") != 0);
    CHECK(strcmp(lstm_edge_status_str(LSTM_EDGE_ERR_NONFINITE_INPUT), "ok") != 0);

    printf("api ok\n");
    return 0;
}
