/* lstm_edge_py.c: the CPython binding of the c backend (runtime/backends/c.py).
 *
 * A thin step: one call from Python does what Model.step does for the common inputs
 * (a C-contiguous numpy array of int64/int32 token ids, or float32 features, and a State
 * the runtime made), in C: check the inputs and the state, copy the state into fresh
 * arrays, call the library's batched step on them (the caller's state is never written),
 * check the outputs are finite, and build the read-only State of the result.
 *
 * It returns None whenever it does not take the call (other input types, shapes or
 * dtypes, a token out of range, NaN/Inf in, or out): Model.step then runs its general
 * path, which raises the typed error naming expected vs found, so both paths give the
 * same messages. Model-independent: the model and its step function come in as addresses
 * (bind), from the cached model library the backend already compiled. Compiled once per
 * interpreter and numpy by runtime/backends/c_build.py. The GIL is held throughout, so
 * the per-model scratch can be reused by every call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include "lstm_edge.h"
#include "lstm_edge_int.h"

typedef lstm_edge_status (*step_fn)(const lstm_edge_model *, lstm_edge_state *, int32_t,
                                    const void *, int32_t, float *, float *, size_t);

/* What bind() fixed for one model. */
typedef struct ctx {
    step_fn step;
    const lstm_edge_model *model;
    PyTypeObject *state_type; /* runtime.state.State */
    int tokens;               /* 1: char-lm token ids, 0: forecast float32 features */
    npy_intp layers, hidden, out_size, in_width, vocab;
    size_t scratch_per_stream, scratch_floats; /* floats of one stream; of `scratch` */
    float *scratch;                            /* for up to `block` streams */
    npy_intp block;
    /* int8-full (bind_codes): the State holds integer codes in float32, the library steps
     * int8 h and int16 c (lstm_edge_int_state); scratch_floats counts int16 elements */
    int codes;
    int32_t h_max, c_min, c_max;
} ctx;

static PyObject *s_h, *s_c, *s_checked; /* interned attribute names of State */

static void ctx_free(PyObject *capsule)
{
    ctx *k = PyCapsule_GetPointer(capsule, "lstm_edge_ctx");
    if (k != NULL) {
        Py_XDECREF(k->state_type);
        PyMem_Free(k->scratch);
        PyMem_Free(k);
    }
}

/* bind(step, model, State, tokens, layers, hidden, out_size, in_width, vocab,
 *      scratch_per_stream, block) -> capsule */
static PyObject *bind(PyObject *self, PyObject *args)
{
    unsigned long long step, model;
    PyObject *state_type;
    int tokens;
    Py_ssize_t layers, hidden, out_size, in_width, vocab, per_stream, block;
    ctx *k;
    PyObject *capsule;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKO!pnnnnnnn", &step, &model, &PyType_Type, &state_type,
                          &tokens, &layers, &hidden, &out_size, &in_width, &vocab, &per_stream,
                          &block)) {
        return NULL;
    }
    k = PyMem_Calloc(1, sizeof(ctx));
    if (k == NULL) {
        return PyErr_NoMemory();
    }
    k->step = (step_fn)(uintptr_t)step;
    k->model = (const lstm_edge_model *)(uintptr_t)model;
    Py_INCREF(state_type);
    k->state_type = (PyTypeObject *)state_type;
    k->tokens = tokens;
    k->layers = layers, k->hidden = hidden, k->out_size = out_size;
    k->in_width = in_width, k->vocab = vocab, k->block = block;
    k->scratch_per_stream = (size_t)per_stream;
    k->scratch_floats = (size_t)per_stream * (size_t)block;
    k->scratch = PyMem_Malloc(k->scratch_floats * sizeof(float));
    capsule = PyCapsule_New(k, "lstm_edge_ctx", ctx_free);
    if (k->scratch == NULL || capsule == NULL) {
        if (capsule == NULL) {
            PyMem_Free(k->scratch);
            Py_DECREF(state_type);
            PyMem_Free(k);
        } else {
            Py_DECREF(capsule);
        }
        return PyErr_NoMemory();
    }
    return capsule;
}

/* bind_codes(step, model, State, layers, hidden, out_size, vocab, scratch, h_max, c_min,
 *            c_max) -> capsule: an int8-full token model (lstm_edge_int_step_batch), whose
 * scratch is `scratch` int16 elements whatever the batch. */
static PyObject *bind_codes(PyObject *self, PyObject *args)
{
    unsigned long long step, model;
    PyObject *state_type, *capsule;
    Py_ssize_t layers, hidden, out_size, vocab, scratch;
    int h_max, c_min, c_max;
    ctx *k;
    (void)self;
    if (!PyArg_ParseTuple(args, "KKO!nnnnniii", &step, &model, &PyType_Type, &state_type,
                          &layers, &hidden, &out_size, &vocab, &scratch, &h_max, &c_min,
                          &c_max)) {
        return NULL;
    }
    /* a token model of one "stream" of `scratch` elements: bind's own checks and cleanup */
    args = Py_BuildValue("KKOinnnnnnn", step, model, state_type, 1, layers, hidden, out_size,
                         (Py_ssize_t)1, vocab, scratch, (Py_ssize_t)1);
    capsule = args != NULL ? bind(self, args) : NULL;
    Py_XDECREF(args);
    if (capsule == NULL) {
        return NULL;
    }
    k = PyCapsule_GetPointer(capsule, "lstm_edge_ctx");
    k->codes = 1, k->h_max = h_max, k->c_min = c_min, k->c_max = c_max;
    return capsule;
}

/* No NaN or Inf in v: an integer test of the exponent bits, in blocks of 16 so that the
 * -O2 build vectorizes it too (its cost model skips loops of unknown length; scalar, the
 * test was a seventh of a 64-stream step of a 1x64 model). */
static int all_finite(const float *v, npy_intp n)
{
    const uint32_t *u = (const uint32_t *)v;
    uint32_t bad[16] = {0}, any = 0;
    npy_intp i = 0;
    int j;
    for (; i + 16 <= n; i += 16) {
        for (j = 0; j < 16; ++j) {
            bad[j] |= (u[i + j] & 0x7f800000u) == 0x7f800000u;
        }
    }
    for (; i < n; ++i) {
        any |= (u[i] & 0x7f800000u) == 0x7f800000u;
    }
    for (j = 0; j < 16; ++j) {
        any |= bad[j];
    }
    return any == 0;
}

/* A runtime State's h, c and _checked (borrowed: the state holds them), or 0 when `state`
 * is not a State of `type` (the caller then leaves the call to the general path). */
static int state_fields(PyObject *state, PyTypeObject *type, PyObject **h, PyObject **c,
                        PyObject **checked)
{
    PyObject *dict;
    if (Py_TYPE(state) != type || (dict = PyObject_GenericGetDict(state, NULL)) == NULL) {
        PyErr_Clear();
        return 0;
    }
    *h = PyDict_GetItem(dict, s_h);
    *c = PyDict_GetItem(dict, s_c);
    *checked = PyDict_GetItem(dict, s_checked);
    Py_DECREF(dict);
    return 1;
}

/* A float32, C-contiguous, 3-D array [layers, batch, hidden] of this model. */
static int state_array_ok(const ctx *k, PyObject *a)
{
    PyArrayObject *arr = (PyArrayObject *)a;
    return a != NULL && PyArray_CheckExact(a) && PyArray_TYPE(arr) == NPY_FLOAT32 &&
           PyArray_IS_C_CONTIGUOUS(arr) && PyArray_NDIM(arr) == 3 &&
           PyArray_DIM(arr, 0) == k->layers && PyArray_DIM(arr, 2) == k->hidden;
}

/* Forecast features x [n][F] stay finite once normalized (x * scale + shift, float32, two
 * roundings as numpy computes it; this file is compiled with -ffp-contract=off): a finite
 * value can overflow there, which the network's saturating gates would hide. */
static int normalized_finite(const ctx *k, const float *x, npy_intp n)
{
    const lstm_edge_affine *a = &k->model->input.normalize;
    uint32_t bad = 0;
    npy_intp i, f;
    for (i = 0; i < n; ++i) {
        for (f = 0; f < k->in_width; ++f) {
            const float z = x[i * k->in_width + f] * a->scale[f] + a->shift[f];
            uint32_t u;
            memcpy(&u, &z, sizeof(u));
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
    }
    return bad == 0;
}

/* The inputs as the library reads them: int32 token ids [batch][time] (range-checked) or
 * float32 features [batch][time][F]; sets *batch, *time, *single. Returns a pointer to
 * the values (in `buf` for converted tokens) or NULL when the call is not taken. */
static const void *read_inputs(const ctx *k, PyObject *obj, int32_t *buf, npy_intp cap,
                               npy_intp *batch, npy_intp *time, int *single)
{
    PyArrayObject *a = (PyArrayObject *)obj;
    const int nd = PyArray_NDIM(a);
    npy_intp n, i;
    if (!PyArray_CheckExact(obj) || !PyArray_IS_C_CONTIGUOUS(a)) {
        return NULL;
    }
    *single = nd == 2 - k->tokens;
    if (!*single && nd != 3 - k->tokens) {
        return NULL;
    }
    *batch = PyArray_DIM(a, 0);
    *time = *single ? 1 : PyArray_DIM(a, 1);
    if (*batch < 1 || *time < 1 || *batch > INT32_MAX || *time > INT32_MAX) {
        return NULL;
    }
    if (!k->tokens) {
        if (PyArray_TYPE(a) != NPY_FLOAT32 || PyArray_DIM(a, nd - 1) != k->in_width) {
            return NULL;
        }
        return normalized_finite(k, PyArray_DATA(a), *batch * *time) ? PyArray_DATA(a) : NULL;
    }
    n = *batch * *time;
    if (n > cap) {
        return NULL;
    }
    if (PyArray_TYPE(a) == NPY_INT64) {
        const int64_t *t = PyArray_DATA(a);
        for (i = 0; i < n; ++i) {
            if (t[i] < 0 || t[i] >= k->vocab) {
                return NULL;
            }
            buf[i] = (int32_t)t[i];
        }
        return buf;
    }
    if (PyArray_TYPE(a) == NPY_INT32) {
        const int32_t *t = PyArray_DATA(a);
        for (i = 0; i < n; ++i) {
            if (t[i] < 0 || t[i] >= k->vocab) {
                return NULL;
            }
        }
        return t;
    }
    return NULL;
}

/* A new read-only State (of type `type`) holding h and c (references stolen). */
static PyObject *new_state_of(PyTypeObject *type, PyObject *h, PyObject *c)
{
    PyObject *st = NULL, *dict = NULL;
    PyArray_CLEARFLAGS((PyArrayObject *)h, NPY_ARRAY_WRITEABLE);
    PyArray_CLEARFLAGS((PyArrayObject *)c, NPY_ARRAY_WRITEABLE);
    st = type->tp_alloc(type, 0);
    if (st != NULL) {
        dict = PyObject_GenericGetDict(st, NULL);
    }
    if (dict == NULL || PyDict_SetItem(dict, s_h, h) < 0 || PyDict_SetItem(dict, s_c, c) < 0 ||
        PyDict_SetItem(dict, s_checked, Py_True) < 0) {
        Py_CLEAR(st);
    }
    Py_XDECREF(dict);
    Py_DECREF(h);
    Py_DECREF(c);
    return st;
}

static PyObject *new_state(const ctx *k, PyObject *h, PyObject *c)
{
    return new_state_of(k->state_type, h, c);
}

/* Copy [L][B][H] (Python's layout) to [B][L][H] (the library's per stream) or back. */
static void transpose_lb(const float *src, float *dst, npy_intp a, npy_intp b, npy_intp h)
{
    npy_intp i, j;
    for (i = 0; i < a; ++i) {
        for (j = 0; j < b; ++j) {
            memcpy(dst + (j * a + i) * h, src + (i * b + j) * h, (size_t)h * sizeof(float));
        }
    }
}

/* Run the step on fresh copies hn, cn of the state; 0 on success. [L][B][H] (Python's
 * layout) is the library's per-stream layout when L or B is 1; otherwise the state goes
 * through a transposed copy. */
#define STATES_STACK 64
static int run(const ctx *k, const void *x, npy_intp batch, npy_intp time, const float *h,
               const float *c, float *hn, float *cn, float *y)
{
    const npy_intp n = k->layers * k->hidden;
    const int transposed = batch > 1 && k->layers > 1;
    lstm_edge_state stack[STATES_STACK], *states = stack;
    float *hb = hn, *cb = cn, *mem = NULL;
    npy_intp b;
    lstm_edge_status status;
    size_t bytes = batch > STATES_STACK ? (size_t)batch * sizeof(*states) : 0;
    if (transposed) {
        bytes += 2 * (size_t)(batch * n) * sizeof(float);
    }
    if (bytes > 0) {
        mem = PyMem_Malloc(bytes);
        if (mem == NULL) {
            return -1;
        }
    }
    if (transposed) {
        hb = mem, cb = mem + batch * n;
        transpose_lb(h, hb, k->layers, batch, k->hidden);
        transpose_lb(c, cb, k->layers, batch, k->hidden);
    } else {
        memcpy(hn, h, (size_t)(batch * n) * sizeof(float));
        memcpy(cn, c, (size_t)(batch * n) * sizeof(float));
    }
    if (batch > STATES_STACK) {
        states = (lstm_edge_state *)(mem + (transposed ? 2 * batch * n : 0));
    }
    for (b = 0; b < batch; ++b) {
        states[b].h = hb + b * n;
        states[b].c = cb + b * n;
        states[b].history = NULL; /* bind() is only called for models without a highway */
    }
    status = k->step(k->model, states, (int32_t)batch, x, (int32_t)time, y, k->scratch,
                     k->scratch_floats);
    if (transposed) {
        transpose_lb(hb, hn, batch, k->layers, k->hidden);
        transpose_lb(cb, cn, batch, k->layers, k->hidden);
    }
    PyMem_Free(mem);
    return status == LSTM_EDGE_OK ? 0 : 1;
}

/* int8-full: the State's codes [L][B][H] (float32) -> the library's per-stream int8 h and
 * int16 c, the step, and the new codes back into hn, cn; 0 on success, 1 when a code is
 * not an integer in its range (the general path names it) or the step refused. */
static int run_codes(const ctx *k, const void *x, npy_intp batch, npy_intp time,
                     const float *h, const float *c, float *hn, float *cn, float *y)
{
    const npy_intp n = k->layers * k->hidden, total = batch * n;
    const size_t bytes = (size_t)total * 3 + (size_t)batch * sizeof(lstm_edge_int_state);
    lstm_edge_int_state *states;
    int8_t *hq;
    int16_t *cq;
    char *mem = PyMem_Malloc(bytes);
    npy_intp l, b, i;
    int bad = 0;
    lstm_edge_status status;
    if (mem == NULL) {
        return -1;
    }
    states = (lstm_edge_int_state *)mem; /* first: its alignment is malloc's */
    cq = (int16_t *)(mem + (size_t)batch * sizeof(lstm_edge_int_state));
    hq = (int8_t *)(cq + total);
    for (l = 0; l < k->layers; ++l) {
        for (b = 0; b < batch; ++b) {
            const npy_intp at = (b * k->layers + l) * k->hidden, from = (l * batch + b) * k->hidden;
            const float *hv = h + from, *cv = c + from;
            for (i = 0; i < k->hidden; ++i) {
                /* NaN fails the range tests; an integer code survives the int32 round trip */
                bad |= !(hv[i] >= (float)-k->h_max && hv[i] <= (float)k->h_max) ||
                       hv[i] != (float)(int32_t)hv[i];
                bad |= !(cv[i] >= (float)k->c_min && cv[i] <= (float)k->c_max) ||
                       cv[i] != (float)(int32_t)cv[i];
                hq[at + i] = bad ? 0 : (int8_t)hv[i];
                cq[at + i] = bad ? 0 : (int16_t)cv[i];
            }
        }
    }
    if (bad) {
        PyMem_Free(mem);
        return 1;
    }
    for (b = 0; b < batch; ++b) {
        states[b].h = hq + b * n;
        states[b].c = cq + b * n;
    }
    status = k->step(k->model, (lstm_edge_state *)(void *)states, (int32_t)batch, x,
                     (int32_t)time, y, k->scratch, k->scratch_floats);
    for (l = 0; l < k->layers; ++l) {
        for (b = 0; b < batch; ++b) {
            const npy_intp at = (b * k->layers + l) * k->hidden, to = (l * batch + b) * k->hidden;
            for (i = 0; i < k->hidden; ++i) {
                hn[to + i] = (float)hq[at + i];
                cn[to + i] = (float)cq[at + i];
            }
        }
    }
    PyMem_Free(mem);
    return status == LSTM_EDGE_OK ? 0 : 1;
}

#define TOKEN_STACK 256

/* step(ctx, inputs, state) -> (outputs, State) or None (not taken: use the general path) */
static PyObject *step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const ctx *k;
    PyObject *h, *c, *checked, *y, *hn, *cn, *st, *pair;
    int32_t stack[TOKEN_STACK];
    int32_t *buf = stack;
    const void *x;
    npy_intp batch, time, cap = TOKEN_STACK, ydims[3];
    int single, rc;
    (void)self;
    if (nargs != 3 || (k = PyCapsule_GetPointer(args[0], "lstm_edge_ctx")) == NULL) {
        PyErr_SetString(PyExc_TypeError, "step(ctx, inputs, state)");
        return NULL;
    }
    if (!state_fields(args[2], k->state_type, &h, &c, &checked)) {
        Py_RETURN_NONE;
    }
    if (!state_array_ok(k, h) || !state_array_ok(k, c) ||
        PyArray_DIM((PyArrayObject *)h, 1) != PyArray_DIM((PyArrayObject *)c, 1) ||
        !PyArray_Check(args[1])) {
        Py_RETURN_NONE;
    }
    if (k->tokens) {
        const npy_intp n = PyArray_SIZE((PyArrayObject *)args[1]);
        if (n > TOKEN_STACK) {
            buf = PyMem_Malloc((size_t)n * sizeof(int32_t));
            if (buf == NULL) {
                return PyErr_NoMemory();
            }
            cap = n;
        }
    }
    x = read_inputs(k, args[1], buf, cap, &batch, &time, &single);
    if (x == NULL || PyArray_DIM((PyArrayObject *)h, 1) != batch ||
        (checked != Py_True &&
         !(all_finite(PyArray_DATA((PyArrayObject *)h), PyArray_SIZE((PyArrayObject *)h)) &&
           all_finite(PyArray_DATA((PyArrayObject *)c), PyArray_SIZE((PyArrayObject *)c))))) {
        if (buf != stack) {
            PyMem_Free(buf);
        }
        Py_RETURN_NONE;
    }
    ydims[0] = batch, ydims[1] = single ? k->out_size : time, ydims[2] = k->out_size;
    y = PyArray_SimpleNew(single ? 2 : 3, ydims, NPY_FLOAT32);
    hn = PyArray_SimpleNew(3, PyArray_DIMS((PyArrayObject *)h), NPY_FLOAT32);
    cn = PyArray_SimpleNew(3, PyArray_DIMS((PyArrayObject *)h), NPY_FLOAT32);
    rc = -1;
    if (y != NULL && hn != NULL && cn != NULL) {
        float *yd = PyArray_DATA((PyArrayObject *)y), *hd = PyArray_DATA((PyArrayObject *)hn),
              *cd = PyArray_DATA((PyArrayObject *)cn);
        rc = (k->codes ? run_codes : run)(k, x, batch, time, PyArray_DATA((PyArrayObject *)h),
                                          PyArray_DATA((PyArrayObject *)c), hd, cd, yd);
        if (rc == 0 && !(all_finite(yd, PyArray_SIZE((PyArrayObject *)y)) &&
                         all_finite(hd, PyArray_SIZE((PyArrayObject *)hn)) &&
                         all_finite(cd, PyArray_SIZE((PyArrayObject *)cn)))) {
            rc = 1;
        }
    }
    if (buf != stack) {
        PyMem_Free(buf);
    }
    if (rc != 0) {
        Py_XDECREF(y);
        Py_XDECREF(hn);
        Py_XDECREF(cn);
        if (rc < 0) {
            return PyErr_Occurred() ? NULL : PyErr_NoMemory();
        }
        Py_RETURN_NONE; /* refused or not finite: the general path names why */
    }
    st = new_state(k, hn, cn);
    if (st == NULL) {
        Py_DECREF(y);
        return NULL;
    }
    pair = PyTuple_Pack(2, y, st);
    Py_DECREF(y);
    Py_DECREF(st);
    return pair;
}

/* call(ctx, states, batch, x, time, out, scratch, scratch_floats) -> status: the library's
 * batched step on buffers the caller prepared, by address, with no checks of its own
 * (what `lstm-edge bench` times as the C step alone). */
static PyObject *call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const ctx *k;
    void *p[8];
    Py_ssize_t i;
    (void)self;
    if (nargs != 8 || (k = PyCapsule_GetPointer(args[0], "lstm_edge_ctx")) == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "call(ctx, states, batch, x, time, out, scratch, scratch_floats)");
        return NULL;
    }
    for (i = 1; i < 8; ++i) {
        p[i] = PyLong_AsVoidPtr(args[i]);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromLong(k->step(k->model, p[1], (int32_t)(intptr_t)p[2], p[3],
                                   (int32_t)(intptr_t)p[4], p[5], p[6], (size_t)p[7]));
}

/* ---- the ort backend's thin step ------------------------------------------------------ */

/* What ort_bind() fixed for one onnxruntime session of a token model. */
typedef struct octx {
    PyObject *sess;           /* the session's onnxruntime C++ object (InferenceSession._sess) */
    PyObject *outputs;        /* [output, hn, cn] names */
    PyObject *in_name, *h_name, *c_name;
    PyTypeObject *state_type; /* runtime.state.State */
    npy_intp layers, hidden, vocab;
} octx;

static PyObject *s_run; /* interned "run" */

static void octx_free(PyObject *capsule)
{
    octx *k = PyCapsule_GetPointer(capsule, "lstm_edge_octx");
    if (k != NULL) {
        Py_XDECREF(k->sess);
        Py_XDECREF(k->outputs);
        Py_XDECREF(k->in_name);
        Py_XDECREF(k->h_name);
        Py_XDECREF(k->c_name);
        Py_XDECREF(k->state_type);
        PyMem_Free(k);
    }
}

/* ort_bind(sess, outputs, in_name, h_name, c_name, State, layers, hidden, vocab) -> capsule */
static PyObject *ort_bind(PyObject *self, PyObject *args)
{
    PyObject *sess, *outputs, *in_name, *h_name, *c_name, *state_type, *capsule;
    Py_ssize_t layers, hidden, vocab;
    octx *k;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO!UUUO!nnn", &sess, &PyList_Type, &outputs, &in_name,
                          &h_name, &c_name, &PyType_Type, &state_type, &layers, &hidden,
                          &vocab)) {
        return NULL;
    }
    k = PyMem_Calloc(1, sizeof(octx));
    if (k == NULL) {
        return PyErr_NoMemory();
    }
    Py_INCREF(sess), Py_INCREF(outputs), Py_INCREF(in_name), Py_INCREF(h_name);
    Py_INCREF(c_name), Py_INCREF(state_type);
    k->sess = sess, k->outputs = outputs, k->in_name = in_name, k->h_name = h_name;
    k->c_name = c_name, k->state_type = (PyTypeObject *)state_type;
    k->layers = layers, k->hidden = hidden, k->vocab = vocab;
    capsule = PyCapsule_New(k, "lstm_edge_octx", octx_free);
    if (capsule == NULL) {
        Py_DECREF(sess), Py_DECREF(outputs), Py_DECREF(in_name), Py_DECREF(h_name);
        Py_DECREF(c_name), Py_DECREF(state_type);
        PyMem_Free(k);
    }
    return capsule;
}

/* A float32, C-contiguous numpy array with no NaN or Inf. */
static int finite_array(PyObject *a)
{
    PyArrayObject *arr = (PyArrayObject *)a;
    return PyArray_CheckExact(a) && PyArray_TYPE(arr) == NPY_FLOAT32 &&
           PyArray_IS_C_CONTIGUOUS(arr) && all_finite(PyArray_DATA(arr), PyArray_SIZE(arr));
}

/* ort_step(ctx, tokens, state) -> (logits, State) or None: OrtRunner.fast_step for token
 * ids int64 [batch] or [batch, time] in range and a State the runtime made, in C: the
 * session's own run (looked up on every call, so a patched run is the one called), finite
 * outputs, the read-only State. None for anything else, and when onnxruntime raises: the
 * general path then runs the same call and names the error. */
static PyObject *ort_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const octx *k;
    PyObject *h, *c, *checked, *x, *feed, *res, *y, *hn, *cn, *st, *out;
    PyArrayObject *a;
    npy_intp n, i, batch;
    const int64_t *t;
    (void)self;
    if (nargs != 3 || (k = PyCapsule_GetPointer(args[0], "lstm_edge_octx")) == NULL) {
        PyErr_SetString(PyExc_TypeError, "ort_step(ctx, inputs, state)");
        return NULL;
    }
    if (!state_fields(args[2], k->state_type, &h, &c, &checked)) {
        Py_RETURN_NONE;
    }
    a = (PyArrayObject *)args[1];
    if (checked != Py_True || !PyArray_CheckExact(args[1]) || PyArray_TYPE(a) != NPY_INT64 ||
        !PyArray_IS_C_CONTIGUOUS(a) || PyArray_NDIM(a) < 1 || PyArray_NDIM(a) > 2) {
        Py_RETURN_NONE;
    }
    batch = PyArray_DIM(a, 0);
    n = PyArray_SIZE(a);
    if (h == NULL || c == NULL || !PyArray_CheckExact(h) || !PyArray_CheckExact(c) ||
        PyArray_NDIM((PyArrayObject *)h) != 3 ||
        PyArray_DIM((PyArrayObject *)h, 0) != k->layers ||
        PyArray_DIM((PyArrayObject *)h, 1) != batch ||
        PyArray_DIM((PyArrayObject *)h, 2) != k->hidden || n < 1) {
        Py_RETURN_NONE;
    }
    t = PyArray_DATA(a);
    for (i = 0; i < n; ++i) {
        if (t[i] < 0 || t[i] >= k->vocab) {
            Py_RETURN_NONE; /* the general path names the id */
        }
    }
    if (PyArray_NDIM(a) == 1) { /* one step: [batch] -> [batch, 1] */
        npy_intp dims[2] = {batch, 1};
        PyArray_Dims shape = {dims, 2};
        x = PyArray_Newshape(a, &shape, NPY_CORDER);
    } else {
        Py_INCREF(args[1]);
        x = args[1];
    }
    if (x == NULL) {
        return NULL;
    }
    feed = PyDict_New();
    if (feed == NULL || PyDict_SetItem(feed, k->in_name, x) < 0 ||
        PyDict_SetItem(feed, k->h_name, h) < 0 || PyDict_SetItem(feed, k->c_name, c) < 0) {
        Py_XDECREF(feed);
        Py_DECREF(x);
        return NULL;
    }
    Py_DECREF(x);
    res = PyObject_CallMethodObjArgs(k->sess, s_run, k->outputs, feed, Py_None, NULL);
    Py_DECREF(feed);
    if (res == NULL) {
        PyErr_Clear(); /* onnxruntime's error: the general path raises it, typed */
        Py_RETURN_NONE;
    }
    if (!PyList_CheckExact(res) || PyList_GET_SIZE(res) != 3) {
        Py_DECREF(res);
        Py_RETURN_NONE;
    }
    y = PyList_GET_ITEM(res, 0), hn = PyList_GET_ITEM(res, 1), cn = PyList_GET_ITEM(res, 2);
    if (!finite_array(y) || !finite_array(hn) || !finite_array(cn) ||
        PyArray_NDIM((PyArrayObject *)y) != 3) {
        Py_DECREF(res);
        Py_RETURN_NONE; /* not finite: the general path names the stream */
    }
    Py_INCREF(y), Py_INCREF(hn), Py_INCREF(cn);
    Py_DECREF(res);
    if (PyArray_NDIM(a) == 1) { /* y[:, 0]: [batch, 1, V] -> [batch, V] */
        npy_intp dims[2] = {batch, PyArray_DIM((PyArrayObject *)y, 2)};
        PyArray_Dims shape = {dims, 2};
        PyObject *y2 = PyArray_Newshape((PyArrayObject *)y, &shape, NPY_CORDER);
        Py_DECREF(y);
        y = y2;
        if (y == NULL) {
            Py_DECREF(hn);
            Py_DECREF(cn);
            return NULL;
        }
    }
    st = new_state_of(k->state_type, hn, cn);
    if (st == NULL) {
        Py_DECREF(y);
        return NULL;
    }
    out = PyTuple_Pack(2, y, st);
    Py_DECREF(y);
    Py_DECREF(st);
    return out;
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS, "bind a model: its context for step and call"},
    {"bind_codes", bind_codes, METH_VARARGS, "bind an int8-full token model"},
    {"step", (PyCFunction)(void (*)(void))step, METH_FASTCALL, "Model.step's fast path"},
    {"call", (PyCFunction)(void (*)(void))call, METH_FASTCALL, "the C step alone"},
    {"ort_bind", ort_bind, METH_VARARGS, "bind an onnxruntime session: its context for ort_step"},
    {"ort_step", (PyCFunction)(void (*)(void))ort_step, METH_FASTCALL,
     "the ort backend's Model.step fast path"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lstm_edge_py", NULL, -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lstm_edge_py(void)
{
    import_array();
    s_h = PyUnicode_InternFromString("h");
    s_c = PyUnicode_InternFromString("c");
    s_checked = PyUnicode_InternFromString("_checked");
    s_run = PyUnicode_InternFromString("run");
    if (s_h == NULL || s_c == NULL || s_checked == NULL || s_run == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
