/* lstm_edge.h: step an exported lstm-edge LSTM with caller-owned state, in portable C99.
 *
 * No malloc, no mutable globals, no libc beyond <math.h>, <stdint.h>, <string.h>,
 * <stddef.h>. The model is a const struct (its weights live in flash); every stream owns
 * an lstm_edge_state (h and c of every layer); the caller lends scratch memory whose size
 * is a compile-time constant of the generated model header (NAME_SCRATCH_FLOATS).
 *
 * Two tasks share every kernel; only the input and output stages differ (model->task):
 *   char-lm   token ids in (embedding gather), logits [V] out.
 *   forecast  raw sensor values x [F] in, normalized as x * in_scale + in_shift (float32,
 *             multiply then add, as the ONNX graph's Mul and Add); the head output is
 *             denormalized as head * out_scale + out_shift into raw predictions
 *             [n_targets] of the targets `horizon` steps later (NAME_HORIZON).
 *             A forecast model may carry a linear highway (output.highway, the artifact's
 *             HIGHWAY_* tensors): a fixed autoregression over the last `lags` values of each
 *             output's target, added to the head output; its past values live in the
 *             stream's state (lstm_edge_state.history, NAME_HISTORY_FLOATS floats).
 * Calling a token step on a forecast model (or a forecast step on a char-lm model) returns
 * LSTM_EDGE_ERR_WRONG_TASK.
 *
 * The API mirrors the Python runtime one to one:
 *   Python  state = model.initial_state(batch)   C  lstm_edge_reset(&model, &state)
 *           logits, state = model.step(tok, st)     lstm_edge_step(&model, &state, tok, logits, scratch)
 *           tokens [batch, time]                    lstm_edge_step_batch(...)
 *           out, state = model.step(x [1, F], st)   lstm_edge_forecast_step(&model, &state, x, out, scratch)
 *           x [batch, time, F]                      lstm_edge_forecast_step_batch(...)
 * Unlike Python the C step updates the state in place; copy the h/c (and history) arrays
 * to keep a snapshot (beam search, backspace).
 *
 * The linear highway (forecast models with NAME_HISTORY_FLOATS > 0; Python
 * runtime/tasks/forecast.py "the linear highway"). The state's history holds
 * 1 + lags * n_outputs floats: element 0 is the "seen" flag (0 after lstm_edge_reset,
 * 1 after a step), then `lags` rows of n_outputs normalized target values, oldest first.
 * Per step and output o, with z the normalized features (the input stage's output):
 *   v      = z[select[o]]                                  (the target's normalized value)
 *   past_r = row_r * seen + v * (1 - seen), r = 0 .. lags-1 (every row is v after a reset:
 *            the first steps add no change that never happened)
 *   hw     = sum_r weight[o][r] * window[r] + bias[o], window = (past_0 .., past_lags-1, v),
 *            summed in float32 (no double unit on a Cortex-M4; numpy sums in float64)
 *   out[o] = head[o] + head_bias[o] + hw, then the output stage (denormalize, + last value)
 * and the history becomes (max(seen, 1), window[1 ..]): the same numbers as the ONNX graph
 * and the Python runtime's history state, so a Python State's history is this array.
 * The history advances on every step, also when out is NULL (warming a stream up).
 * A model without a highway ignores state->history (it may be NULL).
 *
 * Semantics are those of the ONNX graph the model came from: the input stage, then per
 * layer the ONNX LSTM (gate order i, o, f, c; f = sigmoid, g = h = tanh), then the linear
 * head (and, for forecast, the output stage). Weight matrices are stored input-major (float32
 * in panels of outputs, see lstm_edge_matrix) so the kernels vectorize without -ffast-math.
 */
#ifndef LSTM_EDGE_H
#define LSTM_EDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Must equal runtime/config.py FORMAT_VERSION of the artifact the model data came from. */
#define LSTM_EDGE_FORMAT_VERSION 1

/* Lanes processed together by the batched steps: streams of a batch, or time steps of one
 * stream's run (a prefill). Per layer the input projection of all lanes is one
 * matrix-matrix product, and the recurrent one of all streams in the block; the kernels
 * read each weight from memory once per block (from L1 once per eight lanes), so 64
 * streams of a model larger than the cache read its weights once per step, not four
 * times. Scratch for n lanes is n times the per-stream scratch below: lend
 * LSTM_EDGE_BATCH_BLOCK of them (NAME_BATCH_SCRATCH_FLOATS) for full speed, or as few as
 * one (NAME_SCRATCH_FLOATS, the same results, slower batches). */
#define LSTM_EDGE_BATCH_BLOCK 64

/* Outputs per panel of a float32 weight matrix (lstm_edge_matrix): the kernels read a
 * panel's weights for every input as one contiguous block, and hold the sums of a
 * panel's outputs for a few lanes in vector registers. The generated model data
 * (runtime/backends/c_source.py) is laid out for this value: data and library ship
 * together (the c backend compiles both, codegen bundles copy this library). */
#define LSTM_EDGE_PANEL 32

/* Scratch floats one lane needs: gates [4H], the layer's output [H] (3H spare), the
 * layer-0 input [input_size] (E for char-lm, F for forecast). The generated header
 * expands this into NAME_SCRATCH_FLOATS. */
#define LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(input, hidden) (8 * (hidden) + (input))

/* Elements of a C array (not a pointer): how the generated model data fills in the
 * n_* length fields below, so that lstm_edge_check_model compares every dimension with
 * the arrays actually present. */
#define LSTM_EDGE_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* model->task: what the model reads and writes per step. */
typedef enum lstm_edge_task {
    LSTM_EDGE_TASK_CHAR_LM = 0, /* token ids in, logits [vocab_size] out */
    LSTM_EDGE_TASK_FORECAST = 1, /* raw float features [input_size] in, raw predictions
                                   [output_size] out */
    LSTM_EDGE_TASK_CLASSIFY = 2  /* raw float features [input_size] in (normalized as for
                                   forecast), class logits [output_size] out; stepped by the
                                   lstm_edge_forecast_step* functions (the feature-row step);
                                   or, with an embedding, token ids in through lstm_edge_step* */
} lstm_edge_task;

typedef enum lstm_edge_status {
    LSTM_EDGE_OK = 0,
    LSTM_EDGE_ERR_NULL = 1,            /* a required pointer is NULL (state->history included,
                                          for a model with a highway) */
    LSTM_EDGE_ERR_BAD_TOKEN = 2,       /* a token id is outside [0, vocab_size) */
    LSTM_EDGE_ERR_BAD_SIZE = 3,        /* batch or time < 0, scratch too small, n < 1, or a
                                          size (model dimensions, batch * time) too large
                                          to compute or address */
    LSTM_EDGE_ERR_BAD_MODEL = 4,       /* model data inconsistent (a dimension that does not
                                          match its array's length, a NULL array) or of
                                          another format version */
    LSTM_EDGE_ERR_NONFINITE_STATE = 5, /* NaN or Inf in h, c or the history */
    LSTM_EDGE_ERR_WRONG_TASK = 6,      /* token step on a forecast model, or the reverse */
    LSTM_EDGE_ERR_NONFINITE_INPUT = 7  /* NaN or Inf in a forecast input (fill missing
                                          sensor values before stepping) */
} lstm_edge_status;

/* A weight matrix of `rows` outputs by `cols` inputs. int8 matrices are stored
 * input-major: element (output r, input j) at [j * rows + r]. float32 matrices are stored
 * in panels of P = `panel` outputs (LSTM_EDGE_PANEL, or 0 for one panel: plain
 * input-major): panel p holds outputs [p * P, p * P + w) with w = min(P, rows - p * P),
 * input-major, at offset p * P * cols, so element (r, j) is at
 * [p * P * cols + j * w + (r - p * P)], p = r / P. Host builds use panels (the register
 * tiles read them; a matrix in one panel takes the slower passes there); microcontroller
 * builds use one panel (their passes pay per panel: on the Cortex-M4 panels of 32 cost
 * the default model's float step 21% more instructions).
 * A float32 matrix has f32 and no q. An int8 matrix has q and one float scale per output
 * row (value = (float)q * scale[r], one float32 rounding, as ONNX DequantizeLinear); its
 * f32 is NULL (panel 0) in generated model data, or holds those values in panels of
 * LSTM_EDGE_PANEL (panel LSTM_EDGE_PANEL) as lstm_edge_dequantized_panels writes them.
 * The n_* fields (here and in every struct below) are the element counts of the arrays as
 * stored (LSTM_EDGE_COUNT of each; 0 for a NULL array): lstm_edge_check_model refuses a
 * model whose dimensions ask for more (or fewer) elements than its arrays hold. */
typedef struct lstm_edge_matrix {
    int32_t rows;
    int32_t cols;
    const float *f32;   /* rows x cols float32 in panels (above); with q its dequantized
                           copy, or NULL */
    const int8_t *q;    /* [cols][rows] int8, or NULL */
    const float *scale; /* [rows], with q */
    size_t n_values;    /* elements of f32 and of q (each present one): rows * cols */
    size_t n_scale;     /* elements of scale: rows with q, 0 without */
    int32_t panel;      /* outputs per panel of f32: LSTM_EDGE_PANEL or 0 (one panel);
                           an int8 matrix: 0 without f32, LSTM_EDGE_PANEL with it */
} lstm_edge_matrix;

typedef struct lstm_edge_layer {
    lstm_edge_matrix w; /* ONNX W: 4H outputs x input size, gates i, o, f, c */
    lstm_edge_matrix r; /* ONNX R: 4H outputs x H */
    const float *bias;  /* [4H] ONNX Wb + Rb, summed at codegen */
    size_t n_bias;      /* elements of bias: 4H */
} lstm_edge_layer;

/* char-lm's input stage: token id -> its row of the embedding [V][E], float32 in f32 or
 * int8 in q with one scale per row (value = q * scale[token]). */
typedef struct lstm_edge_embedding {
    int32_t vocab_size; /* V */
    int32_t embed_size; /* E */
    const float *f32;   /* [V][E] float32, or NULL */
    const int8_t *q;    /* [V][E] int8, or NULL */
    const float *scale; /* [V], with q */
    size_t n_values;    /* elements of f32 (or of q): V * E */
    size_t n_scale;     /* elements of scale: V with q, 0 without */
} lstm_edge_embedding;

/* y[k] = v[k] * scale[k] + shift[k] (float32 in every scheme; multiply, then add). */
typedef struct lstm_edge_affine {
    const float *scale;
    const float *shift;
    size_t n_scale; /* elements of scale */
    size_t n_shift; /* elements of shift */
} lstm_edge_affine;

/* What turns one step's input into the layer-0 input [input_size]. Only the member of the
 * model's task is set; the other is all zero/NULL. */
typedef struct lstm_edge_input_stage {
    lstm_edge_embedding embedding; /* char-lm: token id -> embedding row */
    lstm_edge_affine normalize;    /* forecast: raw features x [F] -> x * scale + shift with
                                      scale = 1 / std, shift = -mean / std (training split) */
} lstm_edge_input_stage;

/* The forecast linear highway (see the header comment): per output o, a fixed linear
 * autoregression over the last `lags` normalized values of the feature column select[o]
 * and its current one, in the head's standard units. float32 copies of the artifact's
 * HIGHWAY_WEIGHT [O][1][lags + 1] (oldest first) and HIGHWAY_BIAS [O]; select is the
 * column of HIGHWAY_SELECT's one in output o's column. All zero/NULL (lags 0) for a model
 * without a highway and for the other tasks. */
typedef struct lstm_edge_highway {
    int32_t lags;          /* L >= 1, or 0: no highway */
    int32_t n_outputs;     /* O: the model's output_size */
    const int32_t *select; /* [O] feature column of output o's target */
    const float *weight;   /* [O][L + 1], oldest first: weight[o][L] multiplies v now */
    const float *bias;     /* [O] */
    size_t n_select;       /* elements of select: O */
    size_t n_weight;       /* elements of weight: O * (L + 1) */
    size_t n_bias;         /* elements of bias: O */
} lstm_edge_highway;

/* What follows the head (bias included). All zero/NULL for char-lm (logits are the
 * head's output). */
typedef struct lstm_edge_output_stage {
    lstm_edge_affine denormalize; /* forecast: head [n_targets] -> head * scale + shift with
                                     scale = std, shift = mean of each target: raw values */
    const int32_t *last_index;    /* forecast change targets: then out[k] += x[last_index[k]]
                                     (the last observed value; scale/shift are the change's
                                     std/mean); NULL for level targets and char-lm */
    size_t n_last_index;          /* elements of last_index: n_targets, or 0 */
    lstm_edge_highway highway;    /* forecast: added to the head output before the
                                     denormalization; all zero without a highway */
} lstm_edge_output_stage;

typedef struct lstm_edge_model {
    int32_t format_version;        /* LSTM_EDGE_FORMAT_VERSION */
    lstm_edge_task task;           /* what the model reads and writes per step */
    int32_t input_size;            /* layer-0 input width: E (char-lm) or F features (forecast) */
    int32_t output_size;           /* per-step output width: V (char-lm) or n_targets (forecast) */
    int32_t hidden_size;           /* H */
    int32_t num_layers;            /* L */
    lstm_edge_input_stage input;   /* the task's input stage */
    lstm_edge_output_stage output; /* the task's output stage */
    const lstm_edge_layer *layers; /* [L] */
    lstm_edge_matrix head;         /* output_size outputs x H inputs */
    const float *head_bias;        /* [output_size] */
    const char *name;              /* sanitized model name */
    const char *scheme;            /* quantization scheme of the source artifact */
    size_t n_layers_stored;        /* elements of layers: L */
    size_t n_head_bias;            /* elements of head_bias: output_size */
    /* Optional, models with an embedding: layer 0's gate inputs per token [V][4H] (its
     * bias plus W times the token's embedding row), as lstm_edge_token_gates computes
     * them, so a step copies a row instead of a matrix-vector product: bit-identical
     * results, V * 4H floats of memory. NULL (generated model data): computed per step. */
    const float *token_gates;
    size_t n_token_gates;          /* elements of token_gates: V * 4H, or 0 */
} lstm_edge_model;

/* Fill table [V][4H] (table_floats >= V * 4H) with the model's layer-0 gate inputs per
 * token and write to *out a copy of *model that uses it (token_gates). Steps of *out equal
 * those of *model bit for bit and skip layer 0's input product; table must outlive *out.
 * scratch: at least the embedding width E (an int8 embedding row is dequantized there;
 * LSTM_EDGE_BATCH_BLOCK * E computes up to that many rows per pass over the weights).
 * LSTM_EDGE_ERR_WRONG_TASK for a model without an embedding. */
lstm_edge_status lstm_edge_token_gates(const lstm_edge_model *model, float *table,
                                       size_t table_floats, float *scratch,
                                       size_t scratch_floats, lstm_edge_model *out);

/* Dequantized panels, for hosts: write w = (float)q * scale[r] of every int8 matrix of
 * the model (each layer's W and R, the head) into `panels`, in panels of LSTM_EDGE_PANEL
 * outputs (the float32 layout, lstm_edge_matrix), one matrix after the other (each
 * starting a multiple of 16 floats into the buffer: align it to 64 bytes, a cache line,
 * for the vector loads of the tiles; any alignment gives the same results), and write to
 * *out a copy of *model whose int8 matrices read these panels (f32, panel
 * LSTM_EDGE_PANEL); its layers are copied into layers [num_layers]. On hosts an int8
 * matrix is computed on exactly these float32 values, in the float32 kernels' order,
 * whichever kernel runs, so steps of *out equal those of *model bit for bit; the copy
 * runs batches and prefill chunks in the float32 register tiles without converting
 * weights per call.
 * keep_int8 1: the copy's matrices keep their int8 weights as well, and single steps
 * read those (a quarter of the bytes: faster when the model does not fit the cache);
 * builds without register tiles (microcontrollers) read only the int8 weights, so the
 * copy equals the model there too. keep_int8 0: the copy is a float32 model (faster
 * single steps when the model fits the cache); equal to the model on hosts, while on
 * builds without register tiles the int8 passes round their groups of eight inputs
 * differently (the last bits).
 * panels, layers and out must outlive *out and be non-NULL; panel_floats: at least
 * lstm_edge_dequantized_floats(model) (for a model without int8 matrices, any: *out is
 * then a plain copy); n_layers: at least num_layers. Nothing is written on a refused
 * call. Other fields of *model are kept (a token gate table stays). */
lstm_edge_status lstm_edge_dequantized_panels(const lstm_edge_model *model, float *panels,
                                              size_t panel_floats, int32_t keep_int8,
                                              lstm_edge_layer *layers, size_t n_layers,
                                              lstm_edge_model *out);

/* Floats lstm_edge_dequantized_panels needs: the sum over the model's int8 matrices of
 * rows * cols rounded up to a multiple of 16 (0 for a model without any, or one that
 * fails lstm_edge_check_model). */
size_t lstm_edge_dequantized_floats(const lstm_edge_model *model);

/* sizeof(lstm_edge_model) and sizeof(lstm_edge_layer), for callers that allocate the
 * outputs of lstm_edge_token_gates and lstm_edge_dequantized_panels without this header
 * (a binding through a foreign-function interface). */
size_t lstm_edge_model_bytes(void);
size_t lstm_edge_layer_bytes(void);

/* One stream's recurrent state: caller-owned arrays of num_layers * hidden_size floats
 * each, layer-major (layer l at [l * H]), NAME_STATE_FLOATS in the generated header; and
 * for a model with a highway the history of its past target values, 1 + lags * n_outputs
 * floats (NAME_HISTORY_FLOATS, lstm_edge_history_floats; the layout is in the header
 * comment). history may be NULL for a model without a highway (NAME_HISTORY_FLOATS 0);
 * initialize the struct by name, e.g. {.h = h, .c = c, .history = history}. */
typedef struct lstm_edge_state {
    float *h;
    float *c;
    float *history;
} lstm_edge_state;

/* Floats of a stream's history: 1 + lags * n_outputs for a model with a highway, 0 for
 * one without (and for a NULL model or one that fails lstm_edge_check_model). */
size_t lstm_edge_history_floats(const lstm_edge_model *model);

/* Check the model data (format version, task, dimensions against the element counts of
 * the arrays present, pointers: the stages of the other task must be zero/NULL). Every
 * size the library computes from the dimensions is computed in 64 bits and must fit
 * int32_t and size_t (LSTM_EDGE_ERR_BAD_SIZE otherwise). Call it once at start-up to
 * learn early; every other function of the model checks it again (a few comparisons per
 * layer) and returns its status instead of reading outside the arrays. */
lstm_edge_status lstm_edge_check_model(const lstm_edge_model *model);

/* Zero h and c, and the history of a model with a highway (the Python initial_state).
 * LSTM_EDGE_ERR_NULL for a NULL h or c, or a NULL history of a highway model. */
lstm_edge_status lstm_edge_reset(const lstm_edge_model *model, lstm_edge_state *state);

/* LSTM_EDGE_ERR_NONFINITE_STATE if h or c (or the history of a highway model) holds
 * NaN/Inf; the step does not check this. LSTM_EDGE_ERR_NULL as for lstm_edge_reset. */
lstm_edge_status lstm_edge_check_state(const lstm_edge_model *model, const lstm_edge_state *state);

/* ---- char-lm models (LSTM_EDGE_ERR_WRONG_TASK on a forecast model) ---- */

/* One token: logits [V] (may be NULL to skip the head). scratch: NAME_SCRATCH_FLOATS.
 * A bad token returns an error before the state is touched. */
lstm_edge_status lstm_edge_step(const lstm_edge_model *model, lstm_edge_state *state,
                                int32_t token, float *logits, float *scratch);

/* `time` tokens of one stream: logits [time][V] (or NULL, e.g. to prefill a prompt).
 * Equal to `time` calls of lstm_edge_step. scratch: NAME_SCRATCH_FLOATS. */
lstm_edge_status lstm_edge_step_many(const lstm_edge_model *model, lstm_edge_state *state,
                                     const int32_t *tokens, int32_t time, float *logits,
                                     float *scratch);

/* `batch` independent streams, tokens [batch][time], logits [batch][time][V] (or NULL),
 * states[b] the state of stream b. scratch_floats tells how much scratch was lent:
 * at least lstm_edge_scratch_floats(model, 1); up to LSTM_EDGE_BATCH_BLOCK lanes (streams,
 * then time steps of each) are processed at once when there is room
 * (NAME_BATCH_SCRATCH_FLOATS). The results do not depend on the scratch lent. */
lstm_edge_status lstm_edge_step_batch(const lstm_edge_model *model, lstm_edge_state *states,
                                      int32_t batch, const int32_t *tokens, int32_t time,
                                      float *logits, float *scratch, size_t scratch_floats);

/* ---- forecast models (LSTM_EDGE_ERR_WRONG_TASK on a char-lm model) ---- */

/* One step of one stream: x [F] raw feature values (in the order of NAME_feature_names),
 * out [n_targets] raw predictions of the targets NAME_HORIZON steps later (may be NULL to
 * only advance the state). NaN/Inf in x returns LSTM_EDGE_ERR_NONFINITE_INPUT before the
 * state is touched; so does a NULL state->history of a highway model (LSTM_EDGE_ERR_NULL).
 * scratch: NAME_SCRATCH_FLOATS. */
lstm_edge_status lstm_edge_forecast_step(const lstm_edge_model *model, lstm_edge_state *state,
                                         const float *x, float *out, float *scratch);

/* `time` steps of one stream: x [time][F], out [time][n_targets] (or NULL, e.g. to warm the
 * state up on history). Equal to `time` calls of lstm_edge_forecast_step. */
lstm_edge_status lstm_edge_forecast_step_many(const lstm_edge_model *model,
                                              lstm_edge_state *state, const float *x,
                                              int32_t time, float *out, float *scratch);

/* `batch` independent streams: x [batch][time][F], out [batch][time][n_targets] (or NULL),
 * states[b] the state of stream b; scratch as for lstm_edge_step_batch. Every input is
 * checked before any state is written. */
lstm_edge_status lstm_edge_forecast_step_batch(const lstm_edge_model *model,
                                               lstm_edge_state *states, int32_t batch,
                                               const float *x, int32_t time, float *out,
                                               float *scratch, size_t scratch_floats);

/* Anomaly score of one row (the `lstm-edge detect` score): the largest
 * |forecast[k] - actual[k]| / residual_scale[k] over the n targets, where forecast is the
 * output made `horizon` steps before the row `actual` holds. Flag the row when the score
 * is above the threshold. A forecast model's generated header has both from the artifact's
 * calibration: NAME_residual_scale and NAME_ANOMALY_THRESHOLD. The score goes to *score;
 * returns LSTM_EDGE_ERR_NULL for a NULL pointer and LSTM_EDGE_ERR_BAD_SIZE for n < 1 (and
 * leaves *score alone). A NaN input gives a NaN score (never a silent "no anomaly"). */
lstm_edge_status lstm_edge_anomaly_score(const float *forecast, const float *actual,
                                         const float *residual_scale, int32_t n, float *score);

/* ---- both tasks ---- */

/* Scratch floats for `streams` lanes processed together (1 .. LSTM_EDGE_BATCH_BLOCK);
 * 0 for a NULL model, a model that fails lstm_edge_check_model, or streams out of range. */
size_t lstm_edge_scratch_floats(const lstm_edge_model *model, int32_t streams);

/* A constant English description of a status code. */
const char *lstm_edge_status_str(lstm_edge_status status);

#ifdef __cplusplus
}
#endif

#endif /* LSTM_EDGE_H */
