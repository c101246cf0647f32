/* lstm_edge.h: step an exported lstm-edge LSTM with caller-owned state, in portable C99.
 *
 * No malloc, no mutable globals, no libc beyond <math.h>, <stdint.h>, <string.h>,
 * <stddef.h>. The model is a const struct (its weights live in flash); every stream owns
 * an lstm_edge_state (h and c of every layer); the caller lends scratch memory whose size
 * is a compile-time constant of the generated model header (NAME_SCRATCH_FLOATS).
 *
 * The API mirrors the Python runtime one to one:
 *   Python  state = model.initial_state(batch)   C  lstm_edge_reset(&model, &state)
 *           logits, state = model.step(tok, st)     lstm_edge_step(&model, &state, tok, logits, scratch)
 *           tokens [batch, time]                    lstm_edge_step_batch(...)
 * Unlike Python the C step updates the state in place; copy the h/c arrays to keep a
 * snapshot (beam search, backspace).
 *
 * Semantics are those of the ONNX graph the model came from: embedding gather, then per
 * layer the ONNX LSTM (gate order i, o, f, c; f = sigmoid, g = h = tanh), then the linear
 * head. Weight matrices are stored input-major (see lstm_edge_matrix) so the kernels
 * vectorize without -ffast-math.
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

/* Streams processed together by lstm_edge_step_batch so that each weight is read once
 * per block instead of once per stream. */
#define LSTM_EDGE_BATCH_BLOCK 4

/* Scratch floats one stream needs: gates [4H], an int8 accumulator [4H], the layer-0
 * input [E]. The generated header expands this into NAME_SCRATCH_FLOATS. */
#define LSTM_EDGE_SCRATCH_FLOATS_PER_STREAM(embed, hidden) (8 * (hidden) + (embed))

typedef enum lstm_edge_status {
    LSTM_EDGE_OK = 0,
    LSTM_EDGE_ERR_NULL = 1,            /* a required pointer is NULL */
    LSTM_EDGE_ERR_BAD_TOKEN = 2,       /* a token id is outside [0, vocab_size) */
    LSTM_EDGE_ERR_BAD_SIZE = 3,        /* batch or time < 0, or scratch too small */
    LSTM_EDGE_ERR_BAD_MODEL = 4,       /* model data inconsistent or of another format version */
    LSTM_EDGE_ERR_NONFINITE_STATE = 5  /* NaN or Inf in h or c */
} lstm_edge_status;

/* A weight matrix of `rows` outputs by `cols` inputs, stored input-major: element
 * (output r, input j) is at [j * rows + r]. Exactly one of f32 / q is set; an int8 matrix
 * has one float scale per output row (value = q * scale[r]). */
typedef struct lstm_edge_matrix {
    int32_t rows;
    int32_t cols;
    const float *f32;   /* [cols][rows] float32, or NULL */
    const int8_t *q;    /* [cols][rows] int8, or NULL */
    const float *scale; /* [rows], with q */
} lstm_edge_matrix;

typedef struct lstm_edge_layer {
    lstm_edge_matrix w; /* ONNX W: 4H outputs x input size, gates i, o, f, c */
    lstm_edge_matrix r; /* ONNX R: 4H outputs x H */
    const float *bias;  /* [4H] ONNX Wb + Rb, summed at codegen */
} lstm_edge_layer;

typedef struct lstm_edge_model {
    int32_t format_version; /* LSTM_EDGE_FORMAT_VERSION */
    int32_t vocab_size;     /* V */
    int32_t embed_size;     /* E */
    int32_t hidden_size;    /* H */
    int32_t num_layers;     /* L */
    /* Embedding [V][E]: float32 in embedding, or int8 in embedding_q with a scale per row. */
    const float *embedding;
    const int8_t *embedding_q;
    const float *embedding_scale; /* [V] */
    const lstm_edge_layer *layers; /* [L] */
    lstm_edge_matrix head;         /* V outputs x H inputs */
    const float *head_bias;        /* [V] */
    const char *name;              /* sanitized model name */
    const char *scheme;            /* quantization scheme of the source artifact */
} lstm_edge_model;

/* One stream's recurrent state: caller-owned arrays of num_layers * hidden_size floats
 * each, layer-major (layer l at [l * H]). NAME_STATE_FLOATS in the generated header. */
typedef struct lstm_edge_state {
    float *h;
    float *c;
} lstm_edge_state;

/* Check the model data once at start-up (format version, dimensions, pointers); the step
 * functions trust a model that passed. */
lstm_edge_status lstm_edge_check_model(const lstm_edge_model *model);

/* Zero h and c (the Python initial_state). */
lstm_edge_status lstm_edge_reset(const lstm_edge_model *model, lstm_edge_state *state);

/* LSTM_EDGE_ERR_NONFINITE_STATE if h or c holds NaN/Inf; the step does not check this. */
lstm_edge_status lstm_edge_check_state(const lstm_edge_model *model, const lstm_edge_state *state);

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
 * at least lstm_edge_scratch_floats(model, 1); up to LSTM_EDGE_BATCH_BLOCK streams are
 * processed at once when there is room (NAME_BATCH_SCRATCH_FLOATS). */
lstm_edge_status lstm_edge_step_batch(const lstm_edge_model *model, lstm_edge_state *states,
                                      int32_t batch, const int32_t *tokens, int32_t time,
                                      float *logits, float *scratch, size_t scratch_floats);

/* Scratch floats for `streams` streams processed together (1 .. LSTM_EDGE_BATCH_BLOCK). */
size_t lstm_edge_scratch_floats(const lstm_edge_model *model, int32_t streams);

/* A constant English description of a status code. */
const char *lstm_edge_status_str(lstm_edge_status status);

#ifdef __cplusplus
}
#endif

#endif /* LSTM_EDGE_H */
