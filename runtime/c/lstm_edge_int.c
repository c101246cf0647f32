/* lstm_edge_int.c: the int8-full step in integer arithmetic (see lstm_edge_int.h).
 *
 * Read top to bottom: the dot products, the fixed-point primitives, one layer's step,
 * the head, the two float stages, the checks, the public steps. Every rounding and
 * saturation is the one runtime/integer.py (the definition) does; the comments name the
 * spec's primitive each function is.
 *
 * Float appears only in lstm_edge_int_quantize_row, lstm_edge_int_output and
 * lstm_edge_int_advance_history (the forecast highway's history), kept out of line
 * (NOINLINE), so that on an MCU without an FPU every other function is integer
 * instructions only; tests/c disassembles the Cortex-M3 build to check it.
 */
#include "lstm_edge_int.h"

#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#define SPECIALIZE inline __attribute__((always_inline)) /* one copy per constant argument */
#define FLOAT_PART inline __attribute__((always_inline)) /* inside a float stage's body */
#else
#define NOINLINE
#define SPECIALIZE inline
#define FLOAT_PART inline
#endif

/* ---- dot products ----------------------------------------------------------------------- */

/* Four gate rows at once (w0..w3, n inputs each) against one input vector x, int8 weights
 * times int8 codes summed in int32, added to acc[0..3]. The rows share every load of x.
 * x comes widened to int16 (once per layer and step, widen()), which is what lets the
 * portable loop vectorize well: gcc -O3 turns int8 x int16 -> int32 sums into vpmaddwd
 * (AVX2) or vpdpwssd (AVX-512 VNNI); int8 x int8 it only widens and multiplies (vpmullw).
 *
 * On Armv7E-M (Cortex-M4/M7, __ARM_FEATURE_DSP), four inputs go per iteration through
 * SXTB16 (bytes 0 and 2 of a weight word, or 1 and 3, as two int16 in one instruction)
 * and SMLAD (two 16x16 products added to a 32-bit sum in one instruction), with x stored
 * in the matching order (x0 x2 x1 x3 per group of four): per four inputs of four rows 6
 * loads, 8 SXTB16 and 8 SMLAD instead of 20 loads and 16 multiply-adds, the CMSIS-NN
 * approach. Exact either way: |products| < 2^15 (the DSP path's x is doubled, SUM_SCALE
 * below), and check_model caps the widths so that a sum fits int32. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#define SMLAD_ORDER 1
static inline uint32_t load4(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* Cortex-M3/M4 LDR takes unaligned addresses */
    return v;
}

static inline void store4(void *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* bytes 0 and 2 (sxtb16) or 1 and 3 (sxtb16 ror 8) of v as two int16 */
static inline uint32_t sxtb16(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}
static inline uint32_t sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
/* both int16 halves of v times two (SADD16 v, v: no carry from the low half into the
 * high one, as a plain shift of the word would have for a negative low half) */
static inline uint32_t double16(uint32_t v)
{
    uint32_t r;
    __asm__("sadd16 %0, %1, %1" : "=r"(r) : "r"(v));
    return r;
}
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

static void dot4(const int8_t *w0, const int8_t *w1, const int8_t *w2, const int8_t *w3,
                 const int16_t *x, int32_t n, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], j = 0;
    for (; j + 4 <= n; j += 4) {
        const uint32_t x02 = load4(x + j), x13 = load4(x + j + 2);
        uint32_t v = load4(w0 + j);
        a0 = smlad(sxtb16(v), x02, a0);
        a0 = smlad(sxtb16_ror8(v), x13, a0);
        v = load4(w1 + j);
        a1 = smlad(sxtb16(v), x02, a1);
        a1 = smlad(sxtb16_ror8(v), x13, a1);
        v = load4(w2 + j);
        a2 = smlad(sxtb16(v), x02, a2);
        a2 = smlad(sxtb16_ror8(v), x13, a2);
        v = load4(w3 + j);
        a3 = smlad(sxtb16(v), x02, a3);
        a3 = smlad(sxtb16_ror8(v), x13, a3);
    }
    for (; j < n; ++j) { /* the last n % 4 inputs, in natural order */
        const int32_t xj = x[j];
        a0 += w0[j] * xj;
        a1 += w1[j] * xj;
        a2 += w2[j] * xj;
        a3 += w3[j] * xj;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
/* One group of four inputs of four interleaved rows (layout 1): LDM loads a word of each
 * row, LDRD the group's x pairs (x0 x2, x1 x3). Registers r4-r10 are the asm's own. */
#define GROUP4                                                                               \
    "ldmia %[w]!, {r4, r5, r6, r7}\n\t"                                                       \
    "ldrd r8, r9, [%[x]], #8\n\t"                                                             \
    "sxtb16 r10, r4\n\t"                                                                      \
    "sxtb16 r4, r4, ror #8\n\t"                                                               \
    "smlad %[a0], r10, r8, %[a0]\n\t"                                                         \
    "smlad %[a0], r4, r9, %[a0]\n\t"                                                          \
    "sxtb16 r10, r5\n\t"                                                                      \
    "sxtb16 r5, r5, ror #8\n\t"                                                               \
    "smlad %[a1], r10, r8, %[a1]\n\t"                                                         \
    "smlad %[a1], r5, r9, %[a1]\n\t"                                                          \
    "sxtb16 r10, r6\n\t"                                                                      \
    "sxtb16 r6, r6, ror #8\n\t"                                                               \
    "smlad %[a2], r10, r8, %[a2]\n\t"                                                         \
    "smlad %[a2], r6, r9, %[a2]\n\t"                                                          \
    "sxtb16 r10, r7\n\t"                                                                      \
    "sxtb16 r7, r7, ror #8\n\t"                                                               \
    "smlad %[a3], r10, r8, %[a3]\n\t"                                                         \
    "smlad %[a3], r7, r9, %[a3]\n\t"
#define GROUP4_OPERANDS                                                                      \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [x] "+r"(x)
#define GROUP4_CLOBBERS "r4", "r5", "r6", "r7", "r8", "r9", "r10", "cc", "memory"

/* The four gate rows of one unit in layout 1 (a block of 4n bytes, 4-byte aligned) against
 * x (SMLAD order, 4-byte aligned), the sums into acc: the n / 4 groups of four inputs
 * (the groups % 8 first ones one by one, then eight per loop iteration: 146 instructions
 * per 128 multiply-adds), then the n % 4 last inputs of each row (x in natural order
 * there). Out of line: the asm takes 14 registers. The asm advances w and x to the tail,
 * and the sums stay in registers to the end: the fixed cost of a call, which the step
 * pays twice per unit, is kept to ~25 instructions. */
NOINLINE static void dot4_block(const int8_t *w, const int16_t *x, int32_t n, int32_t acc[4])
{
    const uint32_t groups = (uint32_t)n / 4u, rest = (uint32_t)n % 4u;
    const int16_t *const end = x + 4 * groups;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint32_t k, j;
    for (k = groups % 8u; k > 0; --k) {
        __asm__ volatile(GROUP4 : GROUP4_OPERANDS : : GROUP4_CLOBBERS);
    }
    if (x != end) {
        __asm__ volatile("1:\n\t" GROUP4 GROUP4 GROUP4 GROUP4 GROUP4 GROUP4 GROUP4 GROUP4
                         "cmp %[x], %[end]\n\t"
                         "bne 1b\n\t"
                         : GROUP4_OPERANDS
                         : [end] "r"(end)
                         : GROUP4_CLOBBERS);
    }
    for (j = 0; j < rest; ++j) { /* w, x: the tail, row by row */
        a0 += w[j] * x[j];
        a1 += w[rest + j] * x[j];
        a2 += w[2 * rest + j] * x[j];
        a3 += w[3 * rest + j] * x[j];
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#else
#define SMLAD_ORDER 0
static void dot4(const int8_t *restrict w0, const int8_t *restrict w1,
                 const int8_t *restrict w2, const int8_t *restrict w3,
                 const int16_t *restrict x, int32_t n, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3], j;
    for (j = 0; j < n; ++j) {
        const int16_t xj = x[j];
        a0 += (int16_t)w0[j] * xj;
        a1 += (int16_t)w1[j] * xj;
        a2 += (int16_t)w2[j] * xj;
        a3 += (int16_t)w3[j] * xj;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#endif

/* The kernels' sums come out doubled on the DSP path (SUM_SCALE 2): widen() stores each
 * code times two there (still int16: |2x| <= 254; one SADD16 per word of two codes), so
 * every dot product is 2a, which is what the 32-bit rescales start from (rmul_hi), and
 * the doubling costs nothing per gate row. Exact: the sums stay below 2^31 (MAX_WIDTH),
 * and halving an even sum is exact. TWICE(s) is 2a and ONCE(s) is a, from a sum s. */
#if SMLAD_ORDER
#define SUM_SCALE 2
#define TWICE(s) (s)
#define ONCE(s) ((s) >> 1)
#else
#define SUM_SCALE 1
#define TWICE(s) (2 * (s))
#define ONCE(s) (s)
#endif

/* x [n] int8 -> int16 times SUM_SCALE, in the order dot4 reads it. */
static void widen(const int8_t *restrict x, int32_t n, int16_t *restrict out)
{
    int32_t j = 0;
#if SMLAD_ORDER
    for (; j + 4 <= n; j += 4) { /* one word in, 2 x0, 2 x2 and 2 x1, 2 x3 out by SXTB16 */
        const uint32_t v = load4(x + j);
        store4(out + j, double16(sxtb16(v)));
        store4(out + j + 2, double16(sxtb16_ror8(v)));
    }
#endif
    for (; j < n; ++j) {
        out[j] = (int16_t)(SUM_SCALE * x[j]);
    }
}

/* The sums of head rows [v, v + 4) (fewer at the end: the missing rows repeat the last
 * one, their sums unused). Layout 1 interleaves each whole block of four rows as the gate
 * matrices' units (the last output_size % 4 rows stay output-major). */
static void rows4(const int8_t *m, int32_t rows, int32_t v, const int16_t *x, int32_t n,
                  int32_t acc[4])
{
    const size_t stride = (size_t)n;
    const int32_t last = rows - 1;
    const int8_t *r0 = m + (size_t)v * stride;
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
#if LSTM_EDGE_INT_LAYOUT == 1
    if (v + 4 <= rows) {
        dot4_block(r0, x, n, acc);
    } else
#endif
    {
        dot4(r0, m + (size_t)(v + 1 < last ? v + 1 : last) * stride,
             m + (size_t)(v + 2 < last ? v + 2 : last) * stride,
             m + (size_t)(v + 3 < last ? v + 3 : last) * stride, x, n, acc);
    }
    acc[0] = ONCE(acc[0]);
    acc[1] = ONCE(acc[1]);
    acc[2] = ONCE(acc[2]);
    acc[3] = ONCE(acc[3]);
}

/* ---- fixed-point primitives (the spec's names) ------------------------------------------ */

static inline int32_t sat8(int64_t v) { return v > 127 ? 127 : (v < -127 ? -127 : (int32_t)v); }

static inline int32_t sat16(int64_t v)
{
    return v > 32767 ? 32767 : (v < -32768 ? -32768 : (int32_t)v);
}

/* rmul(a, M, S) = (a * M + 2^(S-1)) >> S in 64 bits, the shift arithmetic (floor; gcc
 * and clang shift signed values arithmetically, implementation-defined in C99). The
 * common S >= 32 (the gate rescales) is computed from the product's high word, with
 * the same result and no 64-bit variable shift: p = hi * 2^32 + lo with lo in [0, 2^32),
 * so for S > 32 the rounding term 2^(S-1) adds to hi alone and lo cannot change the
 * floor, and for S = 32 it carries lo's top bit into hi. */
static inline int64_t rmul(int32_t a, int32_t m, int32_t s)
{
    const int64_t p = (int64_t)a * m;
    const int32_t hi = (int32_t)(p >> 32);
    if (s > 32) {
        return (hi + ((int32_t)1 << (s - 33))) >> (s - 32); /* |hi| < 2^30: no overflow */
    }
    if (s == 32) {
        return (int64_t)hi + (int64_t)((uint32_t)p >> 31);
    }
    return (p + ((int64_t)1 << (s - 1))) >> s;
}

/* rmul in 32 bits, for |a| < 2^30 (every caller's: the dot sums are capped by MAX_WIDTH,
 * o x tanh(c) by the Q0.15 tables). Two facts make it short:
 *   round_half: (v + 2^(S-1)) >> S == ((v >> (S-1)) + 1) >> 1 for S >= 1 (floor shifts).
 *     With v >> (S-1) = k, v = k 2^(S-1) + r, 0 <= r < 2^(S-1): the left side is
 *     floor((k+1)/2 + r/2^S), and r/2^S < 1/2 cannot lift (k+1)/2 (an integer, or one half
 *     below one) to the next integer; both sides are floor((k+1)/2).
 *   2a fits int32, so one 32 x 32 -> 64 multiply gives d = 2p (p = a m) with no 64-bit
 *     shift: p >> (S-1) = d >> S is d's high word >> (S-32) for S >= 32, and for S < 32
 *     (high word << (32-S)) | (low word >> S), exact in 32 bits when the result is known
 *     to be small.
 * Both take a2 = 2a (TWICE: the kernels' sums already are).
 * rmul_hi: S in [32, 61]. |p| < 2^61: d's high word is below 2^30, the result below 2^29. */
static inline int32_t rmul_hi(int32_t a2, int32_t m, int32_t s)
{
    const int32_t hi = (int32_t)(((int64_t)a2 * m) >> 32);
    return ((hi >> (s - 32)) + 1) >> 1;
}

/* rmul32: any S in [1, 61] when the result is known to be below 2^29 in magnitude
 * (rescale mode 2: codegen and check_model bound it from the widths), so p >> (S-1) fits
 * int32 too. */
static inline int32_t rmul32(int32_t a2, int32_t m, int32_t s)
{
    const int64_t d = (int64_t)a2 * m;
    const int32_t hi = (int32_t)(d >> 32);
    int32_t v; /* p >> (S-1) */
    if (s >= 32) {
        v = hi >> (s - 32);
    } else { /* the bits S .. S+31 of d, as two's complement */
        v = (int32_t)(((uint32_t)hi << (32 - s)) | ((uint32_t)d >> s));
    }
    return (v + 1) >> 1;
}

/* int32 -> [-127, 127] (sat8 of a 32-bit value): SSAT to [-128, 127], then -128 -> -127. */
static inline int32_t clamp8(int32_t v)
{
#if defined(__ARM_FEATURE_SAT) && (defined(__GNUC__) || defined(__clang__))
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r < -127 ? -127 : r;
#else
    return v > 127 ? 127 : (v < -127 ? -127 : v);
#endif
}

/* int32 -> [-32768, 32767]: one SSAT on Arm cores that have it (Cortex-M3 and up). */
static inline int32_t clamp16(int32_t v)
{
#if defined(__ARM_FEATURE_SAT) && (defined(__GNUC__) || defined(__clang__))
    int32_t r;
    __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
#endif
}

/* lut(T, x): x Q3.12 -> T at (x + 32768) / 256, interpolated linearly; Q0.15. */
static inline int32_t lut(const int16_t *t, int32_t x)
{
    const int32_t u = x + 32768, k = u >> 8, fr = u & 255;
#if SMLAD_ORDER
    /* (256 t[k] + fr (t[k+1] - t[k]) + 128) >> 8, the same value (256 t[k] is a multiple of
     * 256), as t[k] (256 - fr) + t[k+1] fr + 128: one SMLAD on the two neighbours loaded as
     * one word (little-endian: t[k] the low half) and the weights 256 - fr, fr (int16) */
    const uint32_t weights = (uint32_t)(256 - fr) | ((uint32_t)fr << 16);
    return smlad(load4(t + k), weights, 128) >> 8;
#else
    return t[k] + (((t[k + 1] - t[k]) * fr + 128) >> 8);
#endif
}

/* c (cf fractional bits) -> Q3.12, rounding (cf > 12) or saturating (cf < 12). */
static inline int32_t to_q312(int32_t c, int32_t cf)
{
    if (cf > 12) {
        return (c + (1 << (cf - 13))) >> (cf - 12);
    }
    /* the spec's sat16(c 2^(12-cf)) in 32 bits: |c| <= 2^15 (a clamped c), 12 - cf <= 12 */
    return clamp16(c * (1 << (12 - cf)));
}

/* ---- one layer -------------------------------------------------------------------------- */

/* Scratch of a step (int16 elements, LSTM_EDGE_INT_SCRATCH): x16 [max(I, H)] and h16 [H],
 * the widened layer input and old h; h_new [H] and x_q [input] int8 (as bytes). */
typedef struct scratch_parts {
    int16_t *x16, *h16;
    int8_t *h_new, *x_q;
} scratch_parts;

static scratch_parts split_scratch(const lstm_edge_int_model *model, int16_t *scratch)
{
    const size_t in = (size_t)model->input_size, hidden = (size_t)model->hidden_size;
    scratch_parts p;
    /* x16 and h16 start on a 4-byte boundary (the DSP kernel loads them by LDRD) */
    p.x16 = scratch + (((uintptr_t)scratch & 3u) != 0);
    p.h16 = p.x16 + LSTM_EDGE_INT_EVEN(in > hidden ? in : hidden);
    p.h_new = (int8_t *)(p.h16 + LSTM_EDGE_INT_EVEN(hidden));
    p.x_q = p.h_new + 2 * ((hidden + 1) / 2);
    return p;
}

/* rmul of a = a2 / 2 by the layer's rescale mode (lstm_edge_int_layer.rescale): 1 every
 * shift in [32, 61] (rmul_hi), 2 results bounded below 2^29 (rmul32), 0 neither (64 bits).
 * The same bits in every mode; modes 1 and 2 keep the gate sums in 32 bits. */
static SPECIALIZE int64_t rescale(int32_t a2, int32_t m, int32_t s, const int mode)
{
    return mode == 1 ? rmul_hi(a2, m, s)
                     : (mode == 2 ? rmul32(a2, m, s) : rmul(a2 / 2, m, s));
}

/* The gate pre-activation of row `row`: sat16(rmul(ax, XM, XS) + rmul(ah, HM, HS) + B),
 * from the kernels' sums sx, sh (ax = ONCE(sx)). In modes 1 and 2 both terms are below
 * 2^29 and |B| < 2^30: the sum fits int32. */
static SPECIALIZE int32_t gate(const lstm_edge_int_layer *ly, int32_t row, int32_t sx,
                               int32_t sh, const int mode)
{
    if (mode != 0) {
        return clamp16((int32_t)rescale(TWICE(sx), ly->x_mult[row], ly->x_shift[row], mode) +
                       (int32_t)rescale(TWICE(sh), ly->h_mult[row], ly->h_shift[row], mode) +
                       ly->bias[row]);
    }
    return sat16(rmul(ONCE(sx), ly->x_mult[row], ly->x_shift[row]) +
                 rmul(ONCE(sh), ly->h_mult[row], ly->h_shift[row]) + ly->bias[row]);
}

/* Layer step of one stream: the gates of unit j (rows j, H+j, 2H+j, 3H+j: i, o, f, c)
 * from x and the old h, then c[j] in place and the new h[j] into h_new; h takes h_new at
 * the end, since every unit's gates read the old h. `mode`, the layer's rescale mode, is
 * a constant in each call of layer_step, so the compiler emits one loop per mode. */
static SPECIALIZE void layer_step_impl(const lstm_edge_int_layer *ly, const int16_t *sig,
                                       const int16_t *tnh, int32_t hidden, const int8_t *x,
                                       int8_t *h, int16_t *c, const scratch_parts *sp,
                                       const int mode)
{
    const int32_t in = ly->input_size;
#if LSTM_EDGE_INT_LAYOUT == 1
    const int8_t *wb = ly->w, *rb = ly->r; /* unit j's blocks of its four gate rows */
#else
    const size_t ws = (size_t)hidden * (size_t)in, rs = (size_t)hidden * (size_t)hidden;
#endif
    int32_t j;
    widen(x, in, sp->x16);
    widen(h, hidden, sp->h16);
    for (j = 0; j < hidden; ++j) {
        int32_t ax[4], ah[4], g[4];
        int32_t i_, o_, f_, u_, fc, ig, cn, cf, ot;
#if LSTM_EDGE_INT_LAYOUT == 1
        dot4_block(wb, sp->x16, in, ax);
        dot4_block(rb, sp->h16, hidden, ah);
        wb += 4 * (size_t)in;
        rb += 4 * (size_t)hidden;
#else
        const int8_t *w = ly->w + (size_t)j * (size_t)in;
        const int8_t *r = ly->r + (size_t)j * (size_t)hidden;
        ax[0] = ax[1] = ax[2] = ax[3] = 0;
        ah[0] = ah[1] = ah[2] = ah[3] = 0;
        dot4(w, w + ws, w + 2 * ws, w + 3 * ws, sp->x16, in, ax);
        dot4(r, r + rs, r + 2 * rs, r + 3 * rs, sp->h16, hidden, ah);
#endif
        g[0] = gate(ly, j, ax[0], ah[0], mode);
        g[1] = gate(ly, j + hidden, ax[1], ah[1], mode);
        g[2] = gate(ly, j + 2 * hidden, ax[2], ah[2], mode);
        g[3] = gate(ly, j + 3 * hidden, ax[3], ah[3], mode);
        i_ = lut(sig, g[0]);
        o_ = lut(sig, g[1]);
        f_ = lut(sig, g[2]);
        u_ = lut(tnh, g[3]);
        cf = ly->cell_frac[j];
        fc = (f_ * c[j] + (1 << 14)) >> 15;
        ig = (i_ * u_ + (1 << (29 - cf))) >> (30 - cf);
        cn = clamp16(fc + ig); /* |fc| <= 2^15, |ig| <= 2^15: no overflow */
        c[j] = (int16_t)cn;
        ot = o_ * lut(tnh, to_q312(cn, cf)); /* Q0.30, |.| < 2^30 */
        sp->h_new[j] = (int8_t)(mode != 0 ? clamp8((int32_t)rescale(2 * ot, ly->out_mult,
                                                                   ly->out_shift, mode))
                                          : sat8(rmul(ot, ly->out_mult, ly->out_shift)));
    }
    memcpy(h, sp->h_new, (size_t)hidden);
}

static void layer_step(const lstm_edge_int_layer *ly, const int16_t *sig, const int16_t *tnh,
                       int32_t hidden, const int8_t *x, int8_t *h, int16_t *c,
                       const scratch_parts *sp)
{
    if (ly->rescale == 1) {
        layer_step_impl(ly, sig, tnh, hidden, x, h, c, sp, 1);
    } else if (ly->rescale == 2) {
        layer_step_impl(ly, sig, tnh, hidden, x, h, c, sp, 2);
    } else {
        layer_step_impl(ly, sig, tnh, hidden, x, h, c, sp, 0);
    }
}

void lstm_edge_int_layers_step(const lstm_edge_int_model *model, lstm_edge_int_state *state,
                               const int8_t *x_q, int16_t *scratch)
{
    const int32_t hidden = model->hidden_size;
    const scratch_parts sp = split_scratch(model, scratch);
    const int8_t *x = x_q;
    int32_t l;
    for (l = 0; l < model->num_layers; ++l) {
        const size_t off = (size_t)l * (size_t)hidden;
        layer_step(&model->layers[l], model->sigmoid_table, model->tanh_table, hidden, x,
                   state->h + off, state->c + off, &sp);
        x = state->h + off; /* the next layer's input is this layer's new h */
    }
}

/* The last layer's h, widened for dot4 into the scratch's h16. */
static const int16_t *head_input(const lstm_edge_int_model *model,
                                 const lstm_edge_int_state *state, const scratch_parts *sp)
{
    const size_t hidden = (size_t)model->hidden_size;
    widen(state->h + (size_t)(model->num_layers - 1) * hidden, model->hidden_size, sp->h16);
    return sp->h16;
}

void lstm_edge_int_head(const lstm_edge_int_model *model, const lstm_edge_int_state *state,
                        int16_t *scratch, int32_t *acc)
{
    const scratch_parts sp = split_scratch(model, scratch);
    const int16_t *h = head_input(model, state, &sp);
    const int32_t n = model->output_size;
    int32_t v, k;
    for (v = 0; v < n; v += 4) {
        int32_t a[4];
        rows4(model->head, n, v, h, model->hidden_size, a);
        for (k = 0; k < 4 && v + k < n; ++k) {
            acc[v + k] = a[k];
        }
    }
}

/* ---- the float stages ------------------------------------------------------------------- */

/* x_q = sat8(floor(xn * inv + 0.5)) with xn = x * scale + shift, each operation one float32
 * rounding, clamped in float before the conversion. The products go through volatiles: no
 * compiler may fuse them into an FMA even under -ffp-contract=fast (one rounding instead of
 * two: another last bit than numpy's). */
NOINLINE void lstm_edge_int_quantize_row(const lstm_edge_int_model *model, const float *x,
                                         int8_t *x_q)
{
    const lstm_edge_affine *a = &model->input.normalize;
    const float inv = model->input.inv_scale;
    int32_t k;
    for (k = 0; k < model->input_size; ++k) {
        volatile float p = x[k] * a->scale[k];
        const float xn = p + a->shift[k];
        volatile float pq = xn * inv;
        float q = pq + 0.5f;
        int32_t t;
        q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
        t = (int32_t)q; /* toward zero; floor is one less for a negative non-integer */
        if ((float)t > q) {
            t -= 1;
        }
        x_q[k] = (int8_t)t;
    }
}

/* The forecast highway (output.highway; see lstm_edge_int.h): column `col` of the raw
 * row x normalized, exactly as lstm_edge_int_quantize_row computes it ... */
static FLOAT_PART float normalized(const lstm_edge_int_model *model, const float *x, int32_t col)
{
    const lstm_edge_affine *a = &model->input.normalize;
    volatile float p = x[col] * a->scale[col];
    return p + a->shift[col];
}

/* ... one history row of output o after the reset blend: row * seen + v * unseen ... */
static FLOAT_PART float history_row(const float *history, int32_t n, int32_t r, int32_t o,
                                    float v, float unseen)
{
    volatile float kept = history[1 + (size_t)r * (size_t)n + (size_t)o] * history[0];
    volatile float filled = v * unseen;
    return kept + filled;
}

/* ... and output o's highway before this step's row x is in the history: the window
 * sum, oldest first, left to right, then the bias. Volatile products: no FMA. */
static FLOAT_PART float highway_value(const lstm_edge_int_model *model, int32_t o,
                                      const float *x, const float *history)
{
    const lstm_edge_highway *hw = &model->output.highway;
    const int32_t lags = hw->lags, n = model->output_size;
    const float *w = hw->weight + (size_t)o * (size_t)(lags + 1);
    const float v = normalized(model, x, hw->select[o]), unseen = 1.0f - history[0];
    volatile float p = w[0] * history_row(history, n, 0, o, v, unseen);
    float acc = p;
    int32_t r;
    for (r = 1; r < lags; ++r) {
        p = w[r] * history_row(history, n, r, o, v, unseen);
        acc = acc + p;
    }
    p = w[lags] * v;
    acc = acc + p;
    return acc + hw->bias[o];
}

NOINLINE void lstm_edge_int_advance_history(const lstm_edge_int_model *model, const float *x,
                                            float *history)
{
    const int32_t lags = model->output.highway.lags, n = model->output_size;
    const float seen = history[0], unseen = 1.0f - seen;
    int32_t o, r;
    for (o = 0; o < n; ++o) {
        const float v = normalized(model, x, model->output.highway.select[o]);
        for (r = 0; r + 1 < lags; ++r) { /* row r + 1 is read before row r + 1 is written */
            history[1 + (size_t)r * (size_t)n + (size_t)o] =
                history_row(history, n, r + 1, o, v, unseen);
        }
        history[1 + (size_t)(lags - 1) * (size_t)n + (size_t)o] = v;
    }
    history[0] = seen > 1.0f ? seen : 1.0f; /* last: every row above read the old flag */
}

NOINLINE void lstm_edge_int_output(const lstm_edge_int_model *model, int32_t first, int32_t n,
                                   const int32_t *acc, const float *x, const float *history,
                                   float *out)
{
    const lstm_edge_affine *d = &model->output.denormalize;
    const lstm_edge_output_stage *o = &model->output;
    int32_t k;
    for (k = 0; k < n; ++k) {
        const int32_t v = first + k;
        volatile float p = (float)acc[k] * model->head_scale[v];
        float y = p + model->head_bias[v];
        if (model->output.highway.lags > 0 && history != NULL && x != NULL) {
            y = y + highway_value(model, v, x, history);
        }
        if (d->scale != NULL) {
            p = y * d->scale[v];
            y = p + d->shift[v];
        }
        if (o->last_index != NULL && x != NULL) {
            y += x[o->last_index[v]]; /* change targets: one per output */
        }
        out[v] = y;
    }
}

/* The head and the output stage of one step: four outputs' sums at a time (integer), then
 * their float stage. */
static void head_out(const lstm_edge_int_model *model, const lstm_edge_int_state *state,
                     const scratch_parts *sp, const float *x, float *out)
/* (state->history is the one before this step's row: lstm_edge_int_output reads it) */
{
    const int16_t *h = head_input(model, state, sp);
    const int32_t n = model->output_size;
    int32_t v;
    for (v = 0; v < n; v += 4) {
        int32_t a[4];
        rows4(model->head, n, v, h, model->hidden_size, a);
        lstm_edge_int_output(model, v, n - v < 4 ? n - v : 4, a, x,
                             model->output.highway.lags > 0 ? state->history : NULL, out);
    }
}

/* ---- checks ----------------------------------------------------------------------------- */

/* Widest dot product: 2^16 int8 x int8 products (each |p| <= 127 * 127 < 2^14) sum to
 * less than 2^30, so the int32 sums never overflow, nor do the DSP path's doubled ones
 * (SUM_SCALE: below 2^31). */
#define MAX_WIDTH 65536

/* A stored array of `count` elements is exactly rows * cols long (both in [1, MAX_WIDTH]
 * or a small multiple: no uint64_t overflow). */
static int count_ok(size_t count, int64_t rows, int64_t cols)
{
    return (uint64_t)count == (uint64_t)rows * (uint64_t)cols;
}

static int affine_ok(const lstm_edge_affine *a, int32_t n)
{
    return a->scale != NULL && a->shift != NULL && count_ok(a->n_scale, n, 1) &&
           count_ok(a->n_shift, n, 1);
}

static int affine_empty(const lstm_edge_affine *a)
{
    return a->scale == NULL && a->shift == NULL && a->n_scale == 0 && a->n_shift == 0;
}

/* Finite by the bit pattern (exponent not all ones): integer instructions only, so the
 * checks of the step path need no float. */
static int finite_bits(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7f800000u) != 0x7f800000u;
}

static int positive_finite(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits != 0 && bits < 0x7f800000u; /* sign bit clear, not zero, not Inf/NaN */
}

/* Most lags a highway may have (MAX_AR_LAGS of runtime/format.py). */
#define MAX_LAGS 4096

/* No highway (lags 0, every pointer NULL and count 0), or a forecast model's: counts
 * that match the outputs and lags, feature columns in range. */
static int highway_ok(const lstm_edge_int_model *model)
{
    const lstm_edge_highway *hw = &model->output.highway;
    const int32_t out = model->output_size;
    size_t k;
    if (hw->lags == 0) {
        return hw->n_outputs == 0 && hw->select == NULL && hw->weight == NULL &&
               hw->bias == NULL && hw->n_select == 0 && hw->n_weight == 0 && hw->n_bias == 0;
    }
    if (hw->lags < 0 || hw->lags > MAX_LAGS || hw->n_outputs != out ||
        model->task != LSTM_EDGE_TASK_FORECAST ||
        model->input.vocab_size != 0 || hw->select == NULL || hw->weight == NULL ||
        hw->bias == NULL || !count_ok(hw->n_select, out, 1) ||
        !count_ok(hw->n_weight, out, (int64_t)hw->lags + 1) || !count_ok(hw->n_bias, out, 1)) {
        return 0;
    }
    for (k = 0; k < hw->n_select; ++k) {
        if (hw->select[k] < 0 || hw->select[k] >= model->input_size) {
            return 0;
        }
    }
    return 1;
}

static int stages_ok(const lstm_edge_int_model *model)
{
    const lstm_edge_int_input_stage *in = &model->input;
    const lstm_edge_output_stage *o = &model->output;
    const int tokens = in->vocab_size > 0;
    const int no_denorm = affine_empty(&o->denormalize);
    size_t k;
    if (tokens) {
        if (in->embedding == NULL ||
            !count_ok(in->n_embedding, in->vocab_size, model->input_size) ||
            !affine_empty(&in->normalize)) {
            return 0;
        }
    } else if (in->vocab_size != 0 || in->embedding != NULL || in->n_embedding != 0 ||
               !affine_ok(&in->normalize, model->input_size) || !positive_finite(in->inv_scale)) {
        return 0;
    }
    if (o->last_index == NULL || o->n_last_index == 0) {
        if (o->last_index != NULL || o->n_last_index != 0) {
            return 0;
        }
    } else {
        if (tokens || o->n_last_index != (size_t)model->output_size) {
            return 0;
        }
        for (k = 0; k < o->n_last_index; ++k) {
            if (o->last_index[k] < 0 || o->last_index[k] >= model->input_size) {
                return 0;
            }
        }
    }
    if (!highway_ok(model)) {
        return 0;
    }
    switch (model->task) {
    case LSTM_EDGE_TASK_CHAR_LM:
        return tokens && no_denorm && model->output_size == in->vocab_size;
    case LSTM_EDGE_TASK_FORECAST:
        return !tokens && affine_ok(&o->denormalize, model->output_size);
    case LSTM_EDGE_TASK_CLASSIFY:
        return no_denorm && o->last_index == NULL;
    }
    return 0;
}

/* The structure: dimensions, pointers and element counts (a few comparisons per layer;
 * every step checks it again). */
static lstm_edge_status check_structure(const lstm_edge_int_model *model)
{
    const int32_t hidden = model->hidden_size, out = model->output_size;
    int32_t l;
    if (model->format_version != LSTM_EDGE_FORMAT_VERSION ||
        model->layout != LSTM_EDGE_INT_LAYOUT || model->input_size < 1 || out < 1 ||
        hidden < 1 || model->num_layers < 1) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    if (model->input_size > MAX_WIDTH || hidden > MAX_WIDTH || out > MAX_WIDTH ||
        (uint64_t)hidden * (uint64_t)(hidden > model->input_size ? hidden : model->input_size) *
                4u > (uint64_t)SIZE_MAX / 2u) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    if (model->layers == NULL || (uint64_t)model->n_layers_stored != (uint64_t)model->num_layers ||
        model->head == NULL || !count_ok(model->n_head, out, hidden) ||
        model->head_scale == NULL || !count_ok(model->n_head_scale, out, 1) ||
        model->head_bias == NULL || !count_ok(model->n_head_bias, out, 1) ||
        model->sigmoid_table == NULL || model->n_sigmoid_table != LSTM_EDGE_INT_TABLE_SIZE ||
        model->tanh_table == NULL || model->n_tanh_table != LSTM_EDGE_INT_TABLE_SIZE ||
        !stages_ok(model)) {
        return LSTM_EDGE_ERR_BAD_MODEL;
    }
    for (l = 0; l < model->num_layers; ++l) {
        const lstm_edge_int_layer *ly = &model->layers[l];
        const int32_t in = l == 0 ? model->input_size : hidden, rows = 4 * hidden;
        if (ly->input_size != in || ly->w == NULL || !count_ok(ly->n_w, rows, in) ||
            ly->r == NULL || !count_ok(ly->n_r, rows, hidden) || ly->x_mult == NULL ||
            !count_ok(ly->n_x_mult, rows, 1) || ly->x_shift == NULL ||
            !count_ok(ly->n_x_shift, rows, 1) || ly->h_mult == NULL ||
            !count_ok(ly->n_h_mult, rows, 1) || ly->h_shift == NULL ||
            !count_ok(ly->n_h_shift, rows, 1) || ly->bias == NULL ||
            !count_ok(ly->n_bias, rows, 1) || ly->cell_frac == NULL ||
            !count_ok(ly->n_cell_frac, hidden, 1)) {
            return LSTM_EDGE_ERR_BAD_MODEL;
        }
    }
    return LSTM_EDGE_OK;
}

/* A layer's rescale mode holds for one rescale of |a| <= a_max by (m, s) and the bias it
 * is summed with: mode 1 needs s in [32, 61], mode 2 a result below 2^29 (s <= 61); both
 * |bias| < 2^30. Mode 0 (64 bits) always holds. */
static int rescale_ok(int32_t mode, int64_t a_max, int32_t m, int32_t s, int32_t bias)
{
    const int bias_ok = bias > -(1 << 30) && bias < (1 << 30);
    if (mode == 0) {
        return 1;
    }
    if (s > 61 || !bias_ok) {
        return 0;
    }
    if (mode == 1) {
        return s >= 32;
    }
    /* a_max < 2^31 and m < 2^31: the product fits uint64; + 1 for the rounding */
    return mode == 2 && (((uint64_t)a_max * (uint64_t)m) >> s) + 1 < ((uint64_t)1 << 29);
}

static int mult_ok(int32_t m, int32_t s)
{
    return m >= (int32_t)1 << 30 && s >= 1 && s <= 62;
}

lstm_edge_status lstm_edge_int_check_model(const lstm_edge_int_model *model)
{
    lstm_edge_status status;
    int32_t l, k;
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    status = check_structure(model);
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    /* the values the arithmetic relies on: shifts in range (no undefined shift), cell
     * formats 0 .. 15 (the products' rounding terms fit int32), gate outputs in Q0.15
     * (|o tanh(c)| < 2^30, as rmul_hi needs), a rescale mode that holds */
    for (k = 0; k < LSTM_EDGE_INT_TABLE_SIZE; ++k) {
        if (model->sigmoid_table[k] < 0 || model->tanh_table[k] < -32767) {
            return LSTM_EDGE_ERR_BAD_MODEL;
        }
    }
    for (l = 0; l < model->num_layers; ++l) {
        const lstm_edge_int_layer *ly = &model->layers[l];
        const int64_t in = l == 0 ? model->input_size : model->hidden_size;
        if (!mult_ok(ly->out_mult, ly->out_shift) ||
            !rescale_ok(ly->rescale, 32767 * 32767, ly->out_mult, ly->out_shift, 0)) {
            return LSTM_EDGE_ERR_BAD_MODEL;
        }
        for (k = 0; k < 4 * model->hidden_size; ++k) {
            if (!mult_ok(ly->x_mult[k], ly->x_shift[k]) || !mult_ok(ly->h_mult[k], ly->h_shift[k])) {
                return LSTM_EDGE_ERR_BAD_MODEL;
            }
            if (!rescale_ok(ly->rescale, 16129 * in, ly->x_mult[k], ly->x_shift[k], ly->bias[k]) ||
                !rescale_ok(ly->rescale, 16129 * (int64_t)model->hidden_size, ly->h_mult[k],
                            ly->h_shift[k], ly->bias[k])) {
                return LSTM_EDGE_ERR_BAD_MODEL; /* the mode would overflow its 32-bit path */
            }
        }
        for (k = 0; k < model->hidden_size; ++k) {
            if (ly->cell_frac[k] < 0 || ly->cell_frac[k] > 15) {
                return LSTM_EDGE_ERR_BAD_MODEL;
            }
        }
    }
    return LSTM_EDGE_OK;
}

static size_t scratch_size(const lstm_edge_int_model *model)
{
    return (size_t)LSTM_EDGE_INT_SCRATCH((size_t)model->input_size, (size_t)model->hidden_size);
}

size_t lstm_edge_int_scratch_size(const lstm_edge_int_model *model)
{
    return lstm_edge_int_check_model(model) == LSTM_EDGE_OK ? scratch_size(model) : 0;
}

static size_t history_size(const lstm_edge_int_model *model)
{
    return (size_t)LSTM_EDGE_INT_HISTORY_SIZE((size_t)model->output.highway.lags,
                                              (size_t)model->output_size);
}

lstm_edge_status lstm_edge_int_reset(const lstm_edge_int_model *model, lstm_edge_int_state *state)
{
    lstm_edge_status status;
    size_t n;
    if (model == NULL || state == NULL || state->h == NULL || state->c == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    status = check_structure(model);
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    if (model->output.highway.lags > 0 && state->history == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    n = (size_t)model->num_layers * (size_t)model->hidden_size;
    memset(state->h, 0, n);
    memset(state->c, 0, n * sizeof(int16_t));
    if (model->output.highway.lags > 0) { /* all bits zero: 0.0f, the seen flag cleared */
        memset(state->history, 0, history_size(model) * sizeof(float));
    }
    return LSTM_EDGE_OK;
}

/* ---- the steps -------------------------------------------------------------------------- */

/* Every check of a batched call before the first write, so a refused call leaves every
 * state as it was. Exactly one of tokens / x is non-NULL. */
static lstm_edge_status check_batch(const lstm_edge_int_model *model,
                                    const lstm_edge_int_state *states, int32_t batch,
                                    const int32_t *tokens, const float *x, int32_t time,
                                    const int16_t *scratch, size_t n_scratch)
{
    lstm_edge_status status;
    uint64_t steps;
    size_t k;
    if (model == NULL || states == NULL || (tokens == NULL && x == NULL) || scratch == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    status = check_structure(model);
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    if ((tokens != NULL) != (model->input.vocab_size > 0)) {
        return LSTM_EDGE_ERR_WRONG_TASK;
    }
    if (batch < 0 || time < 0 || n_scratch < scratch_size(model)) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    steps = (uint64_t)batch * (uint64_t)time;
    if (steps * (uint64_t)(model->input_size > model->output_size ? model->input_size
                                                                  : model->output_size) >
        (uint64_t)SIZE_MAX / sizeof(float)) {
        return LSTM_EDGE_ERR_BAD_SIZE;
    }
    for (k = 0; k < (size_t)batch; ++k) {
        if (states[k].h == NULL || states[k].c == NULL ||
            (model->output.highway.lags > 0 && states[k].history == NULL)) {
            return LSTM_EDGE_ERR_NULL;
        }
    }
    for (k = 0; k < (size_t)batch && model->output.highway.lags > 0; ++k) {
        const size_t n_history = history_size(model);
        size_t i;
        for (i = 0; i < n_history; ++i) {
            if (!finite_bits(states[k].history[i])) {
                return LSTM_EDGE_ERR_NONFINITE_STATE;
            }
        }
    }
    if (tokens != NULL) {
        for (k = 0; k < (size_t)steps; ++k) {
            if (tokens[k] < 0 || tokens[k] >= model->input.vocab_size) {
                return LSTM_EDGE_ERR_BAD_TOKEN;
            }
        }
        return LSTM_EDGE_OK;
    }
    for (k = 0; k < (size_t)steps * (size_t)model->input_size; ++k) {
        if (!finite_bits(x[k])) {
            return LSTM_EDGE_ERR_NONFINITE_INPUT;
        }
    }
    return LSTM_EDGE_OK;
}

static lstm_edge_status run_batch(const lstm_edge_int_model *model, lstm_edge_int_state *states,
                                  int32_t batch, const int32_t *tokens, const float *x,
                                  int32_t time, float *out, int16_t *scratch, size_t n_scratch)
{
    const lstm_edge_status status =
        check_batch(model, states, batch, tokens, x, time, scratch, n_scratch);
    const size_t n_in = (size_t)model->input_size, n_out = (size_t)model->output_size;
    scratch_parts sp;
    int32_t b, t;
    if (status != LSTM_EDGE_OK) {
        return status;
    }
    sp = split_scratch(model, scratch);
    for (b = 0; b < batch; ++b) {
        for (t = 0; t < time; ++t) {
            const size_t bt = (size_t)b * (size_t)time + (size_t)t;
            const float *row = x != NULL ? x + bt * n_in : NULL;
            const int8_t *in;
            if (tokens != NULL) {
                in = model->input.embedding + (size_t)tokens[bt] * n_in;
            } else {
                lstm_edge_int_quantize_row(model, row, sp.x_q);
                in = sp.x_q;
            }
            lstm_edge_int_layers_step(model, &states[b], in, scratch);
            if (out != NULL) {
                head_out(model, &states[b], &sp, row, out + bt * n_out);
            }
            if (model->output.highway.lags > 0) { /* a feature model: row is set */
                lstm_edge_int_advance_history(model, row, states[b].history);
            }
        }
    }
    return LSTM_EDGE_OK;
}

lstm_edge_status lstm_edge_int_step_batch(const lstm_edge_int_model *model,
                                          lstm_edge_int_state *states, int32_t batch,
                                          const int32_t *tokens, int32_t time, float *out,
                                          int16_t *scratch, size_t n_scratch)
{
    if (tokens == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return run_batch(model, states, batch, tokens, NULL, time, out, scratch, n_scratch);
}

lstm_edge_status lstm_edge_int_forecast_step_batch(const lstm_edge_int_model *model,
                                                   lstm_edge_int_state *states, int32_t batch,
                                                   const float *x, int32_t time, float *out,
                                                   int16_t *scratch, size_t n_scratch)
{
    if (x == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return run_batch(model, states, batch, NULL, x, time, out, scratch, n_scratch);
}

/* One stream: the scratch is the caller's NAME_SCRATCH_WORDS, trusted to be that long. */
static size_t one_stream_scratch(const lstm_edge_int_model *model)
{
    return model != NULL && check_structure(model) == LSTM_EDGE_OK ? scratch_size(model) : 0;
}

lstm_edge_status lstm_edge_int_step_many(const lstm_edge_int_model *model,
                                         lstm_edge_int_state *state, const int32_t *tokens,
                                         int32_t time, float *out, int16_t *scratch)
{
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return lstm_edge_int_step_batch(model, state, 1, tokens, time, out, scratch,
                                    one_stream_scratch(model));
}

lstm_edge_status lstm_edge_int_step(const lstm_edge_int_model *model, lstm_edge_int_state *state,
                                    int32_t token, float *out, int16_t *scratch)
{
    return lstm_edge_int_step_many(model, state, &token, 1, out, scratch);
}

lstm_edge_status lstm_edge_int_forecast_step_many(const lstm_edge_int_model *model,
                                                  lstm_edge_int_state *state, const float *x,
                                                  int32_t time, float *out, int16_t *scratch)
{
    if (model == NULL) {
        return LSTM_EDGE_ERR_NULL;
    }
    return lstm_edge_int_forecast_step_batch(model, state, 1, x, time, out, scratch,
                                             one_stream_scratch(model));
}

lstm_edge_status lstm_edge_int_forecast_step(const lstm_edge_int_model *model,
                                             lstm_edge_int_state *state, const float *x,
                                             float *out, int16_t *scratch)
{
    return lstm_edge_int_forecast_step_many(model, state, x, 1, out, scratch);
}
