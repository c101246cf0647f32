/* bad_args_test.c: the C library against hostile arguments. test_sanitizers.py builds it
 * with lstm_edge.c under -fsanitize=address,undefined -fno-sanitize-recover=all, so any
 * out-of-bounds read, NULL dereference or signed overflow aborts the run; every call must
 * instead return the expected status. The models are small structs built here (no
 * generated bundle). Exits 0 and prints "bad args ok" when every check holds; otherwise
 * names every failed check (and goes on, so that a sanitizer sees every case). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lstm_edge.h"

static int failures; /* the test's own count; the library has no globals */

#define CHECK_AT(cond, line)                                                  \
    do {                                                                      \
        if (!(cond)) {                                                        \
            printf("FAILED line %d (case at line %d): %s\n", __LINE__, line, #cond); \
            ++failures;                                                       \
        }                                                                     \
    } while (0)
#define CHECK(cond) CHECK_AT(cond, __LINE__)

#define EXPECT(call, status) CHECK((call) == (status))
/* in refused_everywhere: the failing case's line */
#define EXPECT_AT(call, status) CHECK_AT((call) == (status), line)

/* A char-lm model: V 5, E 3, H 2, one layer, float32 weights; a forecast model: F 3, 2
 * targets, H 2, one layer, int8 weights. */
enum { V = 5, E = 3, H = 2, F = 3, T = 2 };

static const float emb[V * E] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f,
                                 0.9f, 1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f};
static const float w0[E * 4 * H] = {0.0f};
static const float r0[H * 4 * H] = {0.0f};
static const float b0[4 * H] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
static const float head_w[H * V] = {0.0f};
static const float head_b[V] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
static const lstm_edge_layer lm_layers[1] = {
    {{4 * H, E, w0, NULL, NULL, LSTM_EDGE_COUNT(w0), 0, 0},
     {4 * H, H, r0, NULL, NULL, LSTM_EDGE_COUNT(r0), 0, 0},
     b0,
     LSTM_EDGE_COUNT(b0)}};

static const int8_t fw0_q[F * 4 * H] = {1, 2, 3};
static const float fw0_s[4 * H] = {0.01f, 0.01f, 0.01f, 0.01f, 0.01f, 0.01f, 0.01f, 0.01f};
static const int8_t fr0_q[H * 4 * H] = {1, -1};
static const float fhead_w[H * T] = {0.5f, -0.5f, 0.25f, 0.125f};
static const float fhead_b[T] = {0.0f, 1.0f};
static const float in_scale[F] = {1.0f, 2.0f, 3.0f}, in_shift[F] = {0.0f};
static const float out_scale[T] = {1.0f, 1.0f}, out_shift[T] = {0.0f};
static const lstm_edge_layer fc_layers[1] = {
    {{4 * H, F, NULL, fw0_q, fw0_s, LSTM_EDGE_COUNT(fw0_q), LSTM_EDGE_COUNT(fw0_s), 0},
     {4 * H, H, NULL, fr0_q, fw0_s, LSTM_EDGE_COUNT(fr0_q), LSTM_EDGE_COUNT(fw0_s), 0},
     b0,
     LSTM_EDGE_COUNT(b0)}};

static lstm_edge_model lm_model(void)
{
    lstm_edge_model m;
    memset(&m, 0, sizeof m);
    m.format_version = LSTM_EDGE_FORMAT_VERSION;
    m.task = LSTM_EDGE_TASK_CHAR_LM;
    m.input_size = E;
    m.output_size = V;
    m.hidden_size = H;
    m.num_layers = 1;
    m.input.embedding.vocab_size = V;
    m.input.embedding.embed_size = E;
    m.input.embedding.f32 = emb;
    m.input.embedding.n_values = LSTM_EDGE_COUNT(emb);
    m.layers = lm_layers;
    m.n_layers_stored = LSTM_EDGE_COUNT(lm_layers);
    m.head.rows = V;
    m.head.cols = H;
    m.head.f32 = head_w;
    m.head.n_values = LSTM_EDGE_COUNT(head_w);
    m.head_bias = head_b;
    m.n_head_bias = LSTM_EDGE_COUNT(head_b);
    m.name = "lm";
    m.scheme = "none";
    return m;
}

static lstm_edge_model fc_model(void)
{
    lstm_edge_model m;
    const lstm_edge_affine norm = {in_scale, in_shift, F, F};
    const lstm_edge_affine denorm = {out_scale, out_shift, T, T};
    memset(&m, 0, sizeof m);
    m.format_version = LSTM_EDGE_FORMAT_VERSION;
    m.task = LSTM_EDGE_TASK_FORECAST;
    m.input_size = F;
    m.output_size = T;
    m.hidden_size = H;
    m.num_layers = 1;
    m.input.normalize = norm;
    m.output.denormalize = denorm;
    m.layers = fc_layers;
    m.n_layers_stored = LSTM_EDGE_COUNT(fc_layers);
    m.head.rows = T;
    m.head.cols = H;
    m.head.f32 = fhead_w;
    m.head.n_values = LSTM_EDGE_COUNT(fhead_w);
    m.head_bias = fhead_b;
    m.n_head_bias = LSTM_EDGE_COUNT(fhead_b);
    m.name = "fc";
    m.scheme = "int8";
    return m;
}

/* Every entry point of a model must refuse `bad` with `expected` (and write nothing). */
static void refused_everywhere(const lstm_edge_model *bad, lstm_edge_status expected, int line)
{
    static float h[64], c[64], scratch[256], out[64];
    lstm_edge_state s = {.h = h, .c = c};
    const int32_t tok = 1;
    const float x[F] = {1.0f, 2.0f, 3.0f};
    memset(out, 0, sizeof out);
    h[0] = 7.0f;
    EXPECT_AT(lstm_edge_check_model(bad), expected);
    CHECK_AT(lstm_edge_scratch_floats(bad, 1) == 0, line);
    EXPECT_AT(lstm_edge_reset(bad, &s), expected);
    EXPECT_AT(lstm_edge_check_state(bad, &s), expected);
    EXPECT_AT(lstm_edge_step(bad, &s, tok, out, scratch), expected);
    EXPECT_AT(lstm_edge_step_many(bad, &s, &tok, 1, out, scratch), expected);
    EXPECT_AT(lstm_edge_step_batch(bad, &s, 1, &tok, 1, out, scratch, 256), expected);
    EXPECT_AT(lstm_edge_forecast_step(bad, &s, x, out, scratch), expected);
    EXPECT_AT(lstm_edge_forecast_step_many(bad, &s, x, 1, out, scratch), expected);
    EXPECT_AT(lstm_edge_forecast_step_batch(bad, &s, 1, x, 1, out, scratch, 256), expected);
    CHECK_AT(h[0] == 7.0f && out[0] == 0.0f, line);
    {
        static float panels[256];
        static lstm_edge_layer layers[2];
        lstm_edge_model copy;
        memset(&copy, 0, sizeof copy);
        panels[0] = 7.0f;
        CHECK_AT(lstm_edge_dequantized_floats(bad) == 0, line);
        EXPECT_AT(lstm_edge_dequantized_panels(bad, panels, 256, 1, layers, 2, &copy), expected);
        CHECK_AT(panels[0] == 7.0f && copy.layers == NULL, line);
    }
}

#define REFUSED(model, status) refused_everywhere(&(model), (status), __LINE__)

static void hostile_models(void)
{
    const lstm_edge_model good = lm_model(), good_fc = fc_model();
    lstm_edge_model m;
    lstm_edge_layer two[2];

    /* dimensions whose sizes overflow int32_t (4H, 8H + input) or size_t */
    m = good;
    m.hidden_size = 1 << 30;
    REFUSED(m, LSTM_EDGE_ERR_BAD_SIZE);
    m = good;
    m.hidden_size = 1 << 28;
    REFUSED(m, LSTM_EDGE_ERR_BAD_SIZE);
    m = good;
    m.hidden_size = INT32_MAX;
    REFUSED(m, LSTM_EDGE_ERR_BAD_SIZE);
    m = good;
    m.input_size = INT32_MAX;
    REFUSED(m, LSTM_EDGE_ERR_BAD_SIZE);
    m = good;
    m.hidden_size = -1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* more layers than the layers array holds */
    m = good;
    m.num_layers = 2;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.num_layers = INT32_MAX;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    /* ... even when the array claims enough: layer 1's input is H, not E */
    two[0] = lm_layers[0];
    two[1] = lm_layers[0];
    m = good;
    m.num_layers = 2;
    m.layers = two;
    m.n_layers_stored = 2;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.layers = NULL;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* a vocabulary larger than the embedding table (and head) */
    m = good;
    m.input.embedding.vocab_size = V + 100;
    m.output_size = V + 100;
    m.head.rows = V + 100;
    m.n_head_bias = V + 100;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.input.embedding.n_values = LSTM_EDGE_COUNT(emb) - 1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.input.embedding.embed_size = E + 1;
    m.input_size = E + 1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* head rows larger than the head's arrays */
    m = good;
    m.head.rows = V + 1;
    m.output_size = V + 1;
    m.input.embedding.vocab_size = V + 1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.n_head_bias = V - 1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.head_bias = NULL;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* a layer's arrays shorter than its dimensions */
    two[0] = lm_layers[0];
    two[0].n_bias = 4 * H - 1;
    m = good;
    m.layers = two;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    two[0] = lm_layers[0];
    two[0].r.n_values -= 1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    two[0] = lm_layers[0];
    two[0].w.q = fw0_q; /* both f32 and q, no scales */
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* an int8 matrix's dequantized panels: f32 with panel LSTM_EDGE_PANEL, or neither */
    two[0] = fc_layers[0];
    two[0].w.f32 = fhead_w; /* panel 0 */
    m = good_fc;
    m.layers = two;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    two[0].w.f32 = NULL;
    two[0].w.panel = LSTM_EDGE_PANEL;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* forecast: int8 scales and normalization arrays shorter than their dimensions */
    m = good_fc;
    EXPECT(lstm_edge_check_model(&m), LSTM_EDGE_OK);
    two[0] = fc_layers[0];
    two[0].w.n_scale = 4 * H - 1;
    m.layers = two;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good_fc;
    m.input.normalize.n_shift = F - 1;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good_fc;
    m.output.denormalize.n_scale = 0;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good_fc;
    m.input.embedding.n_values = 1; /* the other task's stage must be empty */
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);

    /* not a model at all */
    m = good;
    m.format_version = 0;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
    m = good;
    m.task = (lstm_edge_task)99;
    REFUSED(m, LSTM_EDGE_ERR_BAD_MODEL);
}

static void null_pointers(void)
{
    const lstm_edge_model lm = lm_model(), fc = fc_model();
    static float h[H], c[H], scratch[4 * LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(E, H)], out[V];
    lstm_edge_state s = {.h = h, .c = c}, no_h = {.h = NULL, .c = c}, no_c = {.h = h, .c = NULL};
    const int32_t tok = 1;
    const float x[F] = {1.0f, 2.0f, 3.0f};
    const size_t sf = LSTM_EDGE_COUNT(scratch);
    float score = -1.0f;

    EXPECT(lstm_edge_check_model(NULL), LSTM_EDGE_ERR_NULL);
    CHECK(lstm_edge_scratch_floats(NULL, 1) == 0);
    EXPECT(lstm_edge_reset(NULL, &s), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_reset(&lm, NULL), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_reset(&lm, &no_h), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_reset(&lm, &no_c), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_check_state(NULL, &s), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_check_state(&lm, NULL), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_check_state(&lm, &no_c), LSTM_EDGE_ERR_NULL);

    EXPECT(lstm_edge_step(NULL, &s, tok, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step(&lm, NULL, tok, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step(&lm, &no_h, tok, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step(&lm, &s, tok, out, NULL), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step_many(&lm, &s, NULL, 1, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step_batch(&lm, NULL, 1, &tok, 1, out, scratch, sf), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step_batch(&lm, &s, 1, NULL, 1, out, scratch, sf), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_step_batch(&lm, &s, 1, &tok, 1, out, NULL, sf), LSTM_EDGE_ERR_NULL);

    EXPECT(lstm_edge_forecast_step(NULL, &s, x, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_forecast_step(&fc, NULL, x, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_forecast_step(&fc, &no_c, x, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_forecast_step(&fc, &s, NULL, out, scratch), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_forecast_step(&fc, &s, x, out, NULL), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_forecast_step_batch(&fc, &s, 1, NULL, 1, out, scratch, sf),
           LSTM_EDGE_ERR_NULL);

    {
        static float panels[48];
        static lstm_edge_layer layers[1];
        lstm_edge_model copy;
        EXPECT(lstm_edge_dequantized_panels(NULL, panels, 48, 1, layers, 1, &copy),
               LSTM_EDGE_ERR_NULL);
        EXPECT(lstm_edge_dequantized_panels(&fc, NULL, 48, 1, layers, 1, &copy),
               LSTM_EDGE_ERR_NULL);
        EXPECT(lstm_edge_dequantized_panels(&fc, panels, 48, 1, NULL, 1, &copy),
               LSTM_EDGE_ERR_NULL);
        EXPECT(lstm_edge_dequantized_panels(&fc, panels, 48, 1, layers, 1, NULL),
               LSTM_EDGE_ERR_NULL);
        CHECK(lstm_edge_dequantized_floats(NULL) == 0);
    }

    EXPECT(lstm_edge_anomaly_score(NULL, x, x, F, &score), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_anomaly_score(x, x, x, F, NULL), LSTM_EDGE_ERR_NULL);
    EXPECT(lstm_edge_anomaly_score(x, x, x, 0, &score), LSTM_EDGE_ERR_BAD_SIZE);
    CHECK(score == -1.0f);
}

static void bad_calls(void)
{
    const lstm_edge_model lm = lm_model(), fc = fc_model();
    static float h[H], c[H], scratch[4 * LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(E, H)], out[2][V];
    lstm_edge_state s = {.h = h, .c = c};
    const int32_t toks[2] = {1, 2}, bad_toks[2] = {1, V};
    const float x[F] = {1.0f, 2.0f, 3.0f};
    const size_t sf = LSTM_EDGE_COUNT(scratch);

    EXPECT(lstm_edge_check_model(&lm), LSTM_EDGE_OK);
    CHECK(lstm_edge_scratch_floats(&lm, 1) == (size_t)LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(E, H));
    CHECK(lstm_edge_scratch_floats(&lm, 0) == 0);
    CHECK(lstm_edge_scratch_floats(&lm, -1) == 0);
    CHECK(lstm_edge_scratch_floats(&lm, LSTM_EDGE_BATCH_BLOCK + 1) == 0);
    EXPECT(lstm_edge_reset(&lm, &s), LSTM_EDGE_OK);

    /* negative or overflowing batch * time * width: refused before any array is read */
    EXPECT(lstm_edge_step_batch(&lm, &s, -1, toks, 1, NULL, scratch, sf), LSTM_EDGE_ERR_BAD_SIZE);
    EXPECT(lstm_edge_step_batch(&lm, &s, 1, toks, -1, NULL, scratch, sf), LSTM_EDGE_ERR_BAD_SIZE);
    EXPECT(lstm_edge_step_many(&lm, &s, toks, INT32_MIN, NULL, scratch), LSTM_EDGE_ERR_BAD_SIZE);
    EXPECT(lstm_edge_step_batch(&lm, &s, INT32_MAX, toks, INT32_MAX, NULL, scratch, sf),
           LSTM_EDGE_ERR_BAD_SIZE);
    EXPECT(lstm_edge_forecast_step_batch(&fc, &s, INT32_MAX, x, INT32_MAX, NULL, scratch, sf),
           LSTM_EDGE_ERR_BAD_SIZE);
    EXPECT(lstm_edge_step_batch(&lm, &s, 1, toks, 1, NULL, scratch, 3), LSTM_EDGE_ERR_BAD_SIZE);
    EXPECT(lstm_edge_step_batch(&lm, &s, 1, toks, 1, NULL, scratch, 0), LSTM_EDGE_ERR_BAD_SIZE);

    /* bad tokens, wrong task, non-finite input: the state is left as it was */
    h[0] = 0.5f;
    EXPECT(lstm_edge_step_many(&lm, &s, bad_toks, 2, &out[0][0], scratch),
           LSTM_EDGE_ERR_BAD_TOKEN);
    EXPECT(lstm_edge_step(&lm, &s, -1, NULL, scratch), LSTM_EDGE_ERR_BAD_TOKEN);
    EXPECT(lstm_edge_step(&lm, &s, INT32_MIN, NULL, scratch), LSTM_EDGE_ERR_BAD_TOKEN);
    EXPECT(lstm_edge_forecast_step(&lm, &s, x, NULL, scratch), LSTM_EDGE_ERR_WRONG_TASK);
    EXPECT(lstm_edge_step(&fc, &s, 1, NULL, scratch), LSTM_EDGE_ERR_WRONG_TASK);
    CHECK(h[0] == 0.5f);

    /* and the good calls still work */
    EXPECT(lstm_edge_step_many(&lm, &s, toks, 2, &out[0][0], scratch), LSTM_EDGE_OK);
    CHECK(out[1][0] != 0.0f);
    EXPECT(lstm_edge_check_state(&lm, &s), LSTM_EDGE_OK);
    EXPECT(lstm_edge_reset(&fc, &s), LSTM_EDGE_OK);
    EXPECT(lstm_edge_forecast_step(&fc, &s, x, out[0], scratch), LSTM_EDGE_OK);
    EXPECT(lstm_edge_check_state(&fc, &s), LSTM_EDGE_OK);
    CHECK(lstm_edge_status_str((lstm_edge_status)42) != NULL);

    /* dequantized panels of the forecast model's int8 W [4H x F] and R [4H x H], each
     * rounded up to 16 floats: too small a buffer or layers array is refused; the copy
     * holds q * scale (one panel: 4H < 32) and steps to the same bits */
    {
        static float panels[32 + 16], h2[H], c2[H], out2[T];
        static lstm_edge_layer layers[1];
        lstm_edge_state s2 = {.h = h2, .c = c2};
        lstm_edge_model copy;
        const size_t n = LSTM_EDGE_COUNT(panels);
        int32_t r, j, keep;
        CHECK(lstm_edge_dequantized_floats(&fc) == n && lstm_edge_dequantized_floats(&lm) == 0);
        EXPECT(lstm_edge_dequantized_panels(&fc, panels, n - 1, 1, layers, 1, &copy),
               LSTM_EDGE_ERR_BAD_SIZE);
        EXPECT(lstm_edge_dequantized_panels(&fc, panels, n, 1, layers, 0, &copy),
               LSTM_EDGE_ERR_BAD_SIZE);
        for (keep = 1; keep >= 0; --keep) { /* with the int8 weights, then float32 only */
            EXPECT(lstm_edge_dequantized_panels(&fc, panels, n, keep, layers, 1, &copy),
                   LSTM_EDGE_OK);
            EXPECT(lstm_edge_check_model(&copy), LSTM_EDGE_OK);
            CHECK(copy.layers == layers && layers[0].w.f32 == panels &&
                  layers[0].r.f32 == panels + 32 && copy.head.f32 == fhead_w &&
                  (layers[0].w.q != NULL) == keep && (layers[0].r.scale != NULL) == keep);
            for (r = 0; r < 4 * H; ++r) {
                for (j = 0; j < F; ++j) {
                    CHECK(panels[j * 4 * H + r] == (float)fw0_q[j * 4 * H + r] * fw0_s[r]);
                }
            }
            EXPECT(lstm_edge_reset(&fc, &s), LSTM_EDGE_OK);
            EXPECT(lstm_edge_reset(&copy, &s2), LSTM_EDGE_OK);
            EXPECT(lstm_edge_forecast_step(&fc, &s, x, out[0], scratch), LSTM_EDGE_OK);
            EXPECT(lstm_edge_forecast_step(&copy, &s2, x, out2, scratch), LSTM_EDGE_OK);
            EXPECT(lstm_edge_forecast_step_batch(&copy, &s2, 1, x, 1, out2, scratch, sf),
                   LSTM_EDGE_OK);
            EXPECT(lstm_edge_forecast_step_batch(&fc, &s, 1, x, 1, out[0], scratch, sf),
                   LSTM_EDGE_OK);
            CHECK(memcmp(out[0], out2, sizeof out2) == 0 && memcmp(h, h2, sizeof h2) == 0 &&
                  memcmp(c, c2, sizeof c2) == 0);
        }
    }
}

int main(void)
{
    hostile_models();
    null_pointers();
    bad_calls();
    if (failures != 0) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("bad args ok\n");
    return 0;
}
