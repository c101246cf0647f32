/* api_test.c: the C API's contract, as a user's program sees it. Built by test_codegen.py
 * inside a generated bundle (example_stream.h names the model). Exits 0 and prints
 * "api ok" when every check holds; otherwise names the first failed check. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "example_stream.h"

#define N 40
#define B 6 /* streams of a batch, each a prefill chunk of N steps */
#define SF EXAMPLE_STATE_FLOATS
#define V EXAMPLE_VOCAB

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
static float logits1[N][V], logits2[N][V], logits_b[B][N][V];
static int32_t tokens[B][N];
static const float features[EXAMPLE_INPUT_SIZE] = {0.0f};
static float table[V * 4 * EXAMPLE_HIDDEN], table_scratch[EXAMPLE_INPUT_SIZE];
/* room for every matrix dequantized: layer 0's W and R, the other layers' W and R, the
 * head, each rounded up to 16 floats */
#define HID EXAMPLE_HIDDEN
#define LAYERS (SF / HID)
#define PAD16(n) (((n) + 15) / 16 * 16)
#define ALL_WEIGHTS (PAD16(4 * HID * EXAMPLE_INPUT_SIZE) + PAD16(4 * HID * HID) + \
                     (LAYERS - 1) * 2 * PAD16(4 * HID * HID) + PAD16(V * HID))
static float panels[ALL_WEIGHTS];
static lstm_edge_layer panel_layers[LAYERS];

int main(void)
{
    const lstm_edge_model *m = &EXAMPLE_MODEL;
    lstm_edge_state s1 = {.h = h1, .c = c1}, s2 = {.h = h2, .c = c2}, sb[B];
    lstm_edge_model broken = EXAMPLE_MODEL;
    int32_t t, b, bad[3], keep;

    CHECK(lstm_edge_check_model(m) == LSTM_EDGE_OK);
    broken.format_version = LSTM_EDGE_FORMAT_VERSION + 1;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.head.rows += 1;
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.task = LSTM_EDGE_TASK_FORECAST; /* no normalization arrays */
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);
    broken = EXAMPLE_MODEL;
    broken.input_size += 1; /* no longer the embedding width */
    CHECK(lstm_edge_check_model(&broken) == LSTM_EDGE_ERR_BAD_MODEL);

    /* reset zeroes whatever was there */
    memset(h1, 0xff, sizeof h1);
    CHECK(lstm_edge_reset(m, &s1) == LSTM_EDGE_OK);
    CHECK(h1[0] == 0.0f && c1[SF - 1] == 0.0f);
    CHECK(lstm_edge_reset(m, &s2) == LSTM_EDGE_OK);

    /* N single steps == one step_many call, bit for bit */
    for (t = 0; t < N; ++t) {
        CHECK(lstm_edge_step(m, &s1, example_stream[t], logits1[t], scratch) == LSTM_EDGE_OK);
    }
    CHECK(lstm_edge_step_many(m, &s2, example_stream, N, &logits2[0][0], scratch) ==
          LSTM_EDGE_OK);
    CHECK(memcmp(logits1, logits2, sizeof logits1) == 0);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* NULL logits: the state advances the same (a prompt prefill) */
    lstm_edge_reset(m, &s2);
    CHECK(lstm_edge_step_many(m, &s2, example_stream, N, NULL, scratch) == LSTM_EDGE_OK);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* A bad token anywhere: refused, the state untouched */
    bad[0] = example_stream[0];
    bad[1] = V;
    bad[2] = example_stream[1];
    CHECK(lstm_edge_step_many(m, &s2, bad, 3, &logits2[0][0], scratch) ==
          LSTM_EDGE_ERR_BAD_TOKEN);
    CHECK(lstm_edge_step(m, &s2, -1, logits2[0], scratch) == LSTM_EDGE_ERR_BAD_TOKEN);
    /* A forecast step on a char-lm model: refused, the state untouched */
    CHECK(lstm_edge_forecast_step(m, &s2, features, logits2[0], scratch) ==
          LSTM_EDGE_ERR_WRONG_TASK);
    CHECK(lstm_edge_forecast_step_batch(m, &s2, 1, features, 1, NULL, scratch,
                                        EXAMPLE_SCRATCH_FLOATS) == LSTM_EDGE_ERR_WRONG_TASK);
    CHECK(memcmp(h1, h2, sizeof h1) == 0 && memcmp(c1, c2, sizeof c1) == 0);

    /* Batched streams == each stream alone; scratch for one stream still works */
    for (b = 0; b < B; ++b) {
        sb[b].h = hb[b];
        sb[b].c = cb[b];
        sb[b].history = NULL;
        lstm_edge_reset(m, &sb[b]);
        for (t = 0; t < N; ++t) {
            tokens[b][t] = example_stream[(b * 7 + t) % EXAMPLE_STREAM_LEN];
        }
    }
    CHECK(lstm_edge_step_batch(m, sb, B, &tokens[0][0], N, &logits_b[0][0][0], scratch,
                               sizeof scratch / sizeof scratch[0]) == LSTM_EDGE_OK);
    for (b = 0; b < B; ++b) {
        lstm_edge_reset(m, &s2);
        CHECK(lstm_edge_step_many(m, &s2, tokens[b], N, &logits2[0][0], scratch) ==
              LSTM_EDGE_OK);
        CHECK(memcmp(logits_b[b], logits2, sizeof logits2) == 0);
        CHECK(memcmp(hb[b], h2, sizeof h2) == 0 && memcmp(cb[b], c2, sizeof c2) == 0);
    }
    CHECK(lstm_edge_step_batch(m, sb, B, &tokens[0][0], N, NULL, scratch,
                               EXAMPLE_SCRATCH_FLOATS) == LSTM_EDGE_OK);
    CHECK(lstm_edge_step_batch(m, sb, B, &tokens[0][0], N, NULL, scratch,
                               EXAMPLE_SCRATCH_FLOATS - 1) == LSTM_EDGE_ERR_BAD_SIZE);
    CHECK(lstm_edge_step_batch(m, sb, -1, &tokens[0][0], N, NULL, scratch,
                               EXAMPLE_SCRATCH_FLOATS) == LSTM_EDGE_ERR_BAD_SIZE);

    /* The token gate table: steps of the model that reads it give the same bits */
    {
        lstm_edge_model fast;
        const size_t n = sizeof table / sizeof table[0];
        CHECK(lstm_edge_token_gates(m, table, n - 1, table_scratch, EXAMPLE_INPUT_SIZE, &fast) ==
              LSTM_EDGE_ERR_BAD_SIZE);
        CHECK(lstm_edge_token_gates(m, table, n, table_scratch, EXAMPLE_INPUT_SIZE - 1, &fast) ==
              LSTM_EDGE_ERR_BAD_SIZE);
        CHECK(lstm_edge_token_gates(m, NULL, n, table_scratch, EXAMPLE_INPUT_SIZE, &fast) ==
              LSTM_EDGE_ERR_NULL);
        CHECK(lstm_edge_token_gates(m, table, n, table_scratch, EXAMPLE_INPUT_SIZE, &fast) ==
              LSTM_EDGE_OK);
        CHECK(lstm_edge_check_model(&fast) == LSTM_EDGE_OK && fast.token_gates == table);
        for (b = 0; b < B; ++b) {
            lstm_edge_reset(&fast, &s2);
            CHECK(lstm_edge_step_many(&fast, &s2, tokens[b], N, &logits2[0][0], scratch) ==
                  LSTM_EDGE_OK);
            CHECK(memcmp(logits_b[b], logits2, sizeof logits2) == 0);
        }
        fast.n_token_gates -= 1; /* a table shorter than V x 4H is refused */
        CHECK(lstm_edge_check_model(&fast) == LSTM_EDGE_ERR_BAD_MODEL);
    }

    /* Dequantized panels: an int8 model's copy whose matrices read q * scale in float32
     * panels steps to the same bits (single steps, a batch), keeping its int8 weights
     * (keep 1) or not (keep 0: a float32 model, equal on hosts, where this test runs); a
     * float model has nothing to dequantize. Refused calls write nothing. */
    for (keep = 1; keep >= 0; --keep) {
        lstm_edge_model fast, bad_model;
        const size_t n = lstm_edge_dequantized_floats(m);
        const int int8 = strcmp(m->scheme, "int8") == 0;
        CHECK(n == (int8 ? (size_t)ALL_WEIGHTS : 0));
        memset(&fast, 0, sizeof fast);
        panels[0] = 7.0f;
        if (n > 0) {
            CHECK(lstm_edge_dequantized_panels(m, panels, n - 1, keep, panel_layers, LAYERS,
                                               &fast) == LSTM_EDGE_ERR_BAD_SIZE);
        }
        CHECK(lstm_edge_dequantized_panels(m, panels, n, keep, panel_layers, LAYERS - 1,
                                           &fast) == LSTM_EDGE_ERR_BAD_SIZE);
        CHECK(lstm_edge_dequantized_panels(m, NULL, n, keep, panel_layers, LAYERS, &fast) ==
              LSTM_EDGE_ERR_NULL);
        CHECK(lstm_edge_dequantized_panels(m, panels, n, keep, NULL, LAYERS, &fast) ==
              LSTM_EDGE_ERR_NULL);
        CHECK(lstm_edge_dequantized_panels(m, panels, n, keep, panel_layers, LAYERS, NULL) ==
              LSTM_EDGE_ERR_NULL);
        CHECK(lstm_edge_dequantized_panels(&broken, panels, n, keep, panel_layers, LAYERS,
                                           &fast) == LSTM_EDGE_ERR_BAD_MODEL);
        CHECK(panels[0] == 7.0f && fast.layers == NULL);
        CHECK(lstm_edge_dequantized_panels(m, panels, n, keep, panel_layers, LAYERS, &fast) ==
              LSTM_EDGE_OK);
        CHECK(lstm_edge_check_model(&fast) == LSTM_EDGE_OK && fast.layers == panel_layers);
        CHECK(int8 ? fast.head.f32 == panels + n - (size_t)PAD16(V * HID) &&
                         fast.head.panel == LSTM_EDGE_PANEL &&
                         fast.head.q == (keep ? m->head.q : NULL)
                   : fast.head.f32 == m->head.f32);
        /* (head output r, input j): q * scale, at panel r / P, row j of that panel */
        if (int8) {
            const int32_t r = V - 1, j = HID - 1, p0 = r - r % LSTM_EDGE_PANEL;
            const int32_t w = V - p0 < LSTM_EDGE_PANEL ? V - p0 : LSTM_EDGE_PANEL;
            CHECK(fast.head.f32[p0 * HID + j * w + (r - p0)] ==
                  (float)m->head.q[j * V + r] * m->head.scale[r]);
        }
        for (b = 0; b < B; ++b) {
            lstm_edge_reset(&fast, &s2);
            CHECK(lstm_edge_step_many(&fast, &s2, tokens[b], N, &logits2[0][0], scratch) ==
                  LSTM_EDGE_OK);
            CHECK(memcmp(logits_b[b], logits2, sizeof logits2) == 0);
            lstm_edge_reset(&fast, &sb[b]);
        }
        CHECK(lstm_edge_step_batch(&fast, sb, B, &tokens[0][0], N, &logits_b[0][0][0], scratch,
                                   sizeof scratch / sizeof scratch[0]) == LSTM_EDGE_OK);
        for (b = 0; b < B; ++b) {
            lstm_edge_reset(m, &s2);
            CHECK(lstm_edge_step_many(m, &s2, tokens[b], N, &logits2[0][0], scratch) ==
                  LSTM_EDGE_OK);
            CHECK(memcmp(logits_b[b], logits2, sizeof logits2) == 0);
        }
        /* an int8 matrix with panels must say so (panel), and panels are LSTM_EDGE_PANEL */
        bad_model = fast;
        bad_model.head.panel = int8 && keep ? 0 : 7;
        CHECK(lstm_edge_check_model(&bad_model) == LSTM_EDGE_ERR_BAD_MODEL);
    }

    /* NULLs and non-finite state */
    CHECK(lstm_edge_step(NULL, &s1, 0, logits1[0], scratch) == LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_step(m, &s1, 0, logits1[0], NULL) == LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_check_state(m, &s1) == LSTM_EDGE_OK);
    c1[SF - 1] = (float)NAN;
    CHECK(lstm_edge_check_state(m, &s1) == LSTM_EDGE_ERR_NONFINITE_STATE);
    h1[0] = (float)INFINITY;
    c1[SF - 1] = 0.0f;
    CHECK(lstm_edge_check_state(m, &s1) == LSTM_EDGE_ERR_NONFINITE_STATE);
    CHECK(strcmp(lstm_edge_status_str(LSTM_EDGE_ERR_BAD_TOKEN), "ok") != 0);

    printf("api ok\n");
    return 0;
}
