/* lstm_edge_int.h: step an `int8-full` lstm-edge model in integer arithmetic, portable C99.
 *
 * The scheme (README, runtime/integer.py) quantizes everything the recurrence touches:
 * int8 activations (layer inputs and h), an int16 cell state in a per-unit power-of-two
 * format, int8 weights summed in int32, each matmul's scale folded into an int32
 * multiplier and shift, gate pre-activations in Q3.12 and gate outputs in Q0.15 from two
 * 257-entry int16 tables with linear interpolation. runtime/integer.py is the definition;
 * this library is bit-identical to it (tests/c), so no float instruction runs in the
 * recurrent step and an MCU without an FPU steps it in integer instructions only.
 *
 * Float appears only in small stages outside the recurrence, each its own function:
 *   lstm_edge_int_quantize_row  feature rows: x * in_scale + in_shift, then to int8 codes
 *   lstm_edge_int_output        the head's int32 sums times their scales, + bias, the
 *                               forecast highway, the task's output stage (forecast:
 *                               denormalize, change targets)
 *   lstm_edge_int_advance_history  the forecast highway's history after a step
 * Both are float32 with two roundings per multiply-add, as numpy computes them: build with
 * -ffp-contract=off (no FMA), or the last bit can differ. A token model run without
 * outputs (a prefill) executes no float at all.
 *
 * Same conventions as lstm_edge.h (whose status codes, task enum, affine and output stage
 * structs it shares): no malloc, no mutable globals, the model is const data (flash), the
 * caller owns every stream's state and lends scratch (NAME_SCRATCH_INT16 int16_t, a
 * compile-time constant of the generated model header). The API mirrors the float one:
 *   lstm_edge_reset             lstm_edge_int_reset
 *   lstm_edge_step(_many)       lstm_edge_int_step(_many)          token ids
 *   lstm_edge_forecast_step(_many) lstm_edge_int_forecast_step(_many) raw feature rows
 *   lstm_edge_*_step_batch      lstm_edge_int_step_batch, lstm_edge_int_forecast_step_batch
 * The state is the integer codes: h int8 (real value h * h_scale of the layer), c int16
 * (real value c * 2^-cell_frac[unit]); RAM per stream L * H * 3 bytes (float: L * H * 8).
 * A forecast model with a linear highway (ar_lags > 0) also keeps a float32 history per
 * stream: the seen flag and the last ar_lags normalized values of each output's target,
 * 4 * (1 + ar_lags * outputs) bytes (LSTM_EDGE_INT_HISTORY_SIZE floats).
 */
#ifndef LSTM_EDGE_INT_H
#define LSTM_EDGE_INT_H

#include "lstm_edge.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the gate matrices W and R are laid out, chosen by the compiler that builds both the
 * library and the model data (the generated NAME_model.c holds both layouts and compiles
 * the one this macro names; check_model refuses a mismatch):
 *   0  output-major: row r (gate order i, o, f, c) contiguous, [4H][I]. The portable
 *      kernel; gcc -O3 vectorizes its row dot products.
 *   1  Armv7E-M DSP (Cortex-M4/M7 with gcc or clang): per unit j, its four gate rows
 *      (j, H+j, 2H+j, 3H+j) interleaved in words of four inputs, then their last I % 4
 *      inputs row by row; 4-byte aligned. One LDM loads a word of each of the four rows,
 *      so the kernel's loop is loads, SXTB16 and SMLAD only. The head [output][H] is
 *      interleaved the same way in blocks of four outputs (the last output % 4 rows
 *      output-major). */
#if defined(__ARM_FEATURE_DSP) && (defined(__GNUC__) || defined(__clang__))
#define LSTM_EDGE_INT_LAYOUT 1
#else
#define LSTM_EDGE_INT_LAYOUT 0
#endif

/* Entries of each gate table: x from -8 to +8 in steps of 1/16 (Q3.12 >> 8). */
#define LSTM_EDGE_INT_TABLE_SIZE 257

/* int16 scratch elements one step call needs: a layer's input and the old h widened to
 * int16 (max(input, H) and H, each rounded up to an even count, after one element of
 * slack to start them on a 4-byte boundary), the new h [H] and the quantized feature row
 * [input] (int8, two per element). NAME_SCRATCH_INT16 in the generated header. */
#define LSTM_EDGE_INT_EVEN(n) (2 * (((n) + 1) / 2))
#define LSTM_EDGE_INT_SCRATCH(input, hidden)                                                  \
    (1 + LSTM_EDGE_INT_EVEN((input) > (hidden) ? (input) : (hidden)) +                         \
     LSTM_EDGE_INT_EVEN(hidden) + ((hidden) + 1) / 2 + ((input) + 1) / 2)

/* One layer: W [4H][I] and R [4H][H] int8 (LSTM_EDGE_INT_LAYOUT: output-major, row r in
 * the gate order i, o, f, c contiguous; or interleaved per unit for the Arm DSP kernel),
 * and per gate row the multipliers and shifts that take the int32 sums to Q3.12 and the
 * bias in Q3.12. */
typedef struct lstm_edge_int_layer {
    int32_t input_size;     /* I: the model's input_size for layer 0, else H */
    const int8_t *w;        /* [4H][I] */
    const int8_t *r;        /* [4H][H] */
    const int32_t *x_mult;  /* [4H] in [2^30, 2^31) */
    const int32_t *x_shift; /* [4H] in [1, 62] */
    const int32_t *h_mult;  /* [4H] */
    const int32_t *h_shift; /* [4H] */
    const int32_t *bias;    /* [4H] Q3.12 */
    const int32_t *cell_frac; /* [H] fractional bits of c per unit, 0 .. 15 */
    int32_t out_mult;       /* o * tanh(c) (Q0.30) -> h codes */
    int32_t out_shift;
    int32_t rescale;        /* how the step rescales the layer's sums, the same bits in
                               every mode (codegen picks it, check_model verifies it):
                               1 every shift in [32, 61]: 32-bit, from the product's high
                               word; 2 every result below 2^29 (from the widths): 32-bit
                               for any shift; 0 otherwise: 64-bit. Modes 1 and 2 also need
                               every |bias| < 2^30. */
    size_t n_w, n_r, n_x_mult, n_x_shift, n_h_mult, n_h_shift, n_bias, n_cell_frac;
} lstm_edge_int_layer;

/* The layer-0 input: token ids through the int8 embedding codes, or feature rows
 * normalized (float32) and quantized with inv_scale. Only the task's member is set. */
typedef struct lstm_edge_int_input_stage {
    int32_t vocab_size;        /* V (token models), else 0 */
    const int8_t *embedding;   /* [V][input_size] int8 codes of layer 0's input, or NULL */
    size_t n_embedding;
    lstm_edge_affine normalize; /* feature rows: x * scale + shift */
    float inv_scale;           /* feature rows: 1 / layer 0's input scale (float32) */
} lstm_edge_int_input_stage;

/* The forecast highway (runtime/tasks/forecast.py, "the linear highway"): per output o a
 * fixed linear autoregression over the last `lags` normalized values of its target and
 * the current one, added to the head's output in standard units (after the head bias,
 * before denormalizing). Float32, each operation one rounding, in runtime/integer.py's
 * order (`highway`):
 *   v      = x[index[o]] * in_scale + in_shift       (as lstm_edge_int_quantize_row)
 *   row[r] = history[r] * seen + v * (1 - seen)      (r = 0 .. lags - 1, oldest first)
 *   acc    = weight[o][0] * row[0] + weight[o][1] * row[1] + ... + weight[o][lags] * v,
 *            summed left to right, then + bias[o]
 * and the history becomes (max(seen, 1), row[1], ..., row[lags - 1], v). lags 0 and
 * every pointer NULL / count 0: no highway. The model's output.highway (lstm_edge.h's
 * lstm_edge_highway, whose select is `index` here) holds it. */


/* Floats of one stream's history: the seen flag and `lags` rows of `outputs` values. */
#define LSTM_EDGE_INT_HISTORY_SIZE(lags, outputs) ((lags) > 0 ? 1 + (lags) * (outputs) : 0)

typedef struct lstm_edge_int_model {
    int32_t format_version;          /* LSTM_EDGE_FORMAT_VERSION */
    int32_t layout;                  /* LSTM_EDGE_INT_LAYOUT of the gate matrices */
    lstm_edge_task task;
    int32_t input_size;              /* E (tokens) or F (feature rows) */
    int32_t output_size;             /* V, n_targets or classes */
    int32_t hidden_size;             /* H */
    int32_t num_layers;              /* L */
    lstm_edge_int_input_stage input;
    lstm_edge_output_stage output;   /* as lstm_edge.h: forecast denormalize, change targets,
                                        the linear highway (output.highway) */
    const lstm_edge_int_layer *layers; /* [L] */
    const int8_t *head;              /* [output][H] int8, output-major */
    const float *head_scale;         /* [output]: h scale of the last layer * head row scale */
    const float *head_bias;          /* [output] */
    const int16_t *sigmoid_table;    /* [257] Q0.15 */
    const int16_t *tanh_table;       /* [257] Q0.15 */
    const char *name;
    const char *scheme;              /* "int8-full" */
    size_t n_layers_stored, n_head, n_head_scale, n_head_bias, n_sigmoid_table, n_tanh_table;
} lstm_edge_int_model;

/* One stream's state: num_layers * hidden_size codes each, layer-major; and for a model
 * with a highway its history (LSTM_EDGE_INT_HISTORY_SIZE floats: the seen flag, then the
 * rows oldest first; NULL and never read without a highway). */
typedef struct lstm_edge_int_state {
    int8_t *h;
    int16_t *c;
    float *history;
} lstm_edge_int_state;

/* Check the model data as lstm_edge_check_model does (dimensions against the n_* element
 * counts, pointers, the other task's stage empty) and the integer parameters' ranges
 * (multipliers, shifts, cell formats): the step relies on them not to overflow. */
lstm_edge_status lstm_edge_int_check_model(const lstm_edge_int_model *model);

/* int16 scratch elements one step call needs; 0 for a model that fails its check. */
size_t lstm_edge_int_scratch_size(const lstm_edge_int_model *model);

/* Zero h and c (and the history: the next step starts it from its own row). */
lstm_edge_status lstm_edge_int_reset(const lstm_edge_int_model *model, lstm_edge_int_state *state);

/* ---- token models (char-lm, classify of text) ---- */

/* One token; out [output_size] (NULL: only advance the state, no float runs). */
lstm_edge_status lstm_edge_int_step(const lstm_edge_int_model *model, lstm_edge_int_state *state,
                                    int32_t token, float *out, int16_t *scratch);
lstm_edge_status lstm_edge_int_step_many(const lstm_edge_int_model *model,
                                         lstm_edge_int_state *state, const int32_t *tokens,
                                         int32_t time, float *out, int16_t *scratch);
/* `batch` streams, tokens [batch][time], out [batch][time][output_size] (or NULL);
 * n_scratch at least lstm_edge_int_scratch_size. Every input is checked before any
 * state is written. */
lstm_edge_status lstm_edge_int_step_batch(const lstm_edge_int_model *model,
                                          lstm_edge_int_state *states, int32_t batch,
                                          const int32_t *tokens, int32_t time, float *out,
                                          int16_t *scratch, size_t n_scratch);

/* ---- feature-row models (forecast, classify of rows) ---- */

/* One row of raw values x [F]; NaN/Inf is refused before the state is touched, as is
 * a NULL or non-finite history of a highway model (LSTM_EDGE_ERR_NULL,
 * LSTM_EDGE_ERR_NONFINITE_STATE). The history advances with every row, out NULL or not. */
lstm_edge_status lstm_edge_int_forecast_step(const lstm_edge_int_model *model,
                                             lstm_edge_int_state *state, const float *x,
                                             float *out, int16_t *scratch);
lstm_edge_status lstm_edge_int_forecast_step_many(const lstm_edge_int_model *model,
                                                  lstm_edge_int_state *state, const float *x,
                                                  int32_t time, float *out, int16_t *scratch);
lstm_edge_status lstm_edge_int_forecast_step_batch(const lstm_edge_int_model *model,
                                                   lstm_edge_int_state *states, int32_t batch,
                                                   const float *x, int32_t time, float *out,
                                                   int16_t *scratch, size_t n_scratch);

/* ---- the stages, for firmware that wants them apart (and the tests) ---- */

/* The recurrence: every layer's step from layer 0's int8 input x_q [input_size]; integer
 * only. scratch: NAME_SCRATCH_INT16. The model must have passed its check. */
void lstm_edge_int_layers_step(const lstm_edge_int_model *model, lstm_edge_int_state *state,
                               const int8_t *x_q, int16_t *scratch);

/* The head's int32 sums acc [output] over the last layer's h; integer only. */
void lstm_edge_int_head(const lstm_edge_int_model *model, const lstm_edge_int_state *state,
                        int16_t *scratch, int32_t *acc);

/* Float stage: raw row x [F] -> layer 0's int8 codes x_q [F]. x must be finite. */
void lstm_edge_int_quantize_row(const lstm_edge_int_model *model, const float *x, int8_t *x_q);

/* Float stage: the sums acc [n] of outputs first .. first + n - 1 -> those elements of
 * out [output]: acc * head_scale + head_bias, + the highway (history: the stream's history
 * before this step's row x, or NULL without a highway), then the task's output stage
 * (x: the raw row of a feature model, for change targets and the highway; else NULL). */
void lstm_edge_int_output(const lstm_edge_int_model *model, int32_t first, int32_t n,
                          const int32_t *acc, const float *x, const float *history,
                          float *out);

/* Float stage: the highway's history after the step of raw row x (x finite). */
void lstm_edge_int_advance_history(const lstm_edge_int_model *model, const float *x,
                                   float *history);

#ifdef __cplusplus
}
#endif

#endif /* LSTM_EDGE_INT_H */
