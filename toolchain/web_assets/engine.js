// engine.js: predictive typing in the browser (written by `lstm-edge web`).
//
// Two parts, read top to bottom:
// 1. WasmModel: the C library (runtime/c/lstm_edge.c) compiled to WebAssembly with the
//    model's weights; `step` is the Python runtime's Model.step for token ids.
// 2. Suggester: a port of lstm_edge/runtime/suggest.py, function by function (each names
//    the Python function it mirrors), with the same semantics: the same vocabulary
//    handling, the same probabilities (float64 log-softmax of the float32 logits), the
//    same beam search and tie-breaking, and the phone behaviour (accept inserts the word
//    and a space, attaching punctuation replaces that space, the complete-word slot,
//    next-word slots). Its defaults come from model.json, which `lstm-edge web` fills from
//    the Python constants.
// Text is handled as code points (as Python's str), not UTF-16 units.

// ---- 1. the model: the C library in WebAssembly --------------------------------------

const STATUS = [
  "ok", "a NULL pointer", "a token id out of range", "a bad size", "inconsistent model data",
  "NaN or Inf in the state", "the wrong task", "NaN or Inf in the input",
];

/** Fetch model.json and the module next to `base` (a URL): model-relaxed.wasm where the
 * browser runs relaxed SIMD (its fused multiply-add), else model.wasm (SIMD128). Returns
 * a ready WasmModel (its `module` says which). */
export async function loadModel(base) {
  const config = await (await fetchOk(new URL("model.json", base))).json();
  const file = config.wasm_relaxed && relaxedSimd() ? config.wasm_relaxed : config.wasm;
  const response = await fetchOk(new URL(file, base));
  // Streaming compiles while downloading, and lets the browser cache the optimized code
  // (Chrome does for a cacheable module of 128 KB or more), so a second visit starts fast;
  // it needs the application/wasm type, else the bytes are compiled as a whole.
  if (response.headers.get("Content-Type") === "application/wasm") {
    const { instance } = await WebAssembly.instantiateStreaming(response, {});
    return new WasmModel(instance, config, file);
  }
  return WasmModel.instantiate(await response.arrayBuffer(), config, file);
}

/** Does this engine run relaxed SIMD? It validates a module whose one function is
 * f32x4.relaxed_madd of three v128 constants (as wasm-feature-detect does). */
export function relaxedSimd() {
  const constant = [0xfd, 0x0c, ...new Array(16).fill(0)];  // v128.const 0
  const body = [0x00, ...constant, ...constant, ...constant, 0xfd, 0x85, 0x02, 0x0b];
  return WebAssembly.validate(new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,  // magic, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,  // types: () -> v128
    0x03, 0x02, 0x01, 0x00,  // functions: one of type 0
    0x0a, body.length + 2, 0x01, body.length, ...body,  // code
  ]));
}

async function fetchOk(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

/** One step's recurrent state of `batch` streams: h and c, [batch][layers * hidden] each
 * (the C library's layout). Mirrors runtime/state.py State (a search's beams stay in the
 * module instead, see WasmModel.beams). */
export class State {
  constructor(batch, h, c) {
    this.batch = batch;
    this.h = h;
    this.c = c;
  }

}

/** The model (runtime/model.py Model for char-lm) on the WebAssembly C library. */
export class WasmModel {
  /** Instantiate the module (it imports nothing) and check it against model.json. */
  static async instantiate(bytes, config, file = config.wasm) {
    const { instance } = await WebAssembly.instantiate(bytes, {});
    return new WasmModel(instance, config, file);
  }

  constructor(instance, config, file) {
    this.config = config;
    this.module = file;
    this.x = instance.exports;
    this.vocabSize = this.x.web_vocab_size();
    this.stateFloats = this.x.web_state_floats();
    check(this.x.web_prepare(), "the model data");  // int8: widened to float32 once
    if (this.vocabSize !== config.vocab.length) {
      throw new Error(`model.wasm has ${this.vocabSize} logits, model.json ${config.vocab.length} characters`);
    }
    this.capacity = { lanes: 0, streams: 0, beams: 0 };
  }

  /** Model.initial_state: zeros (lstm_edge_reset), for `batch` streams. */
  initialState(batch = 1) {
    const n = batch * this.stateFloats;
    const h = new Float32Array(n);
    const c = new Float32Array(n);
    this.reserve(batch, batch);
    const mem = () => this.x.memory.buffer;
    check(this.x.web_init_state(this.hPtr, this.cPtr, batch), "initial state");
    h.set(new Float32Array(mem(), this.hPtr, n));
    c.set(new Float32Array(mem(), this.cPtr, n));
    return new State(batch, h, c);
  }

  /** Model.step: tokens of `state.batch` streams, `time` each ([batch][time], flat).
   * Returns { logits: Float32Array [batch][time][vocab], state } (`state` is unchanged). */
  step(tokens, state, time = 1) {
    const batch = state.batch;
    if (tokens.length !== batch * time) throw new Error(`${tokens.length} tokens for ${batch} x ${time}`);
    this.reserve(batch * time, batch);
    const n = batch * this.stateFloats;
    let mem = this.x.memory.buffer;
    new Int32Array(mem, this.tokPtr, tokens.length).set(tokens);
    new Float32Array(mem, this.hPtr, n).set(state.h);
    new Float32Array(mem, this.cPtr, n).set(state.c);
    check(this.x.web_step(batch, time, this.tokPtr, this.hPtr, this.cPtr, this.logitsPtr), "step");
    mem = this.x.memory.buffer;  // a view is re-made after every call into the module
    const logits = new Float32Array(mem, this.logitsPtr, batch * time * this.vocabSize).slice();
    const h = new Float32Array(mem, this.hPtr, n).slice();
    const c = new Float32Array(mem, this.cPtr, n).slice();
    return { logits, state: new State(batch, h, c) };
  }

  /** The start of a beam search from `state` (one stream) of at most `width` beams: the
   * search's states stay in the module, in two buffers written in turn (a step reads its
   * parents from one and writes its beams to the other), so no state is copied to
   * JavaScript per step. Returns the beams (valid until the next search starts). */
  beams(state, width) {
    if (state.batch !== 1) throw new Error(`a search starts from one stream, not ${state.batch}`);
    this.reserve(width, 1);
    if (width > this.capacity.beams) {
      for (const ptr of this.beamPtrs ?? []) this.x.web_free(ptr);
      const bytes = 4 * width * this.stateFloats;
      this.beamPtrs = [0, 1, 2, 3].map(() => this.x.web_alloc(bytes));  // h, c; h, c
      this.parentPtr = this.x.web_alloc(4 * width);
      if (!this.parentPtr || this.beamPtrs.includes(0)) throw new Error("out of memory");
      this.capacity.beams = width;
    }
    const mem = this.x.memory.buffer;
    new Float32Array(mem, this.beamPtrs[0], this.stateFloats).set(state.h);
    new Float32Array(mem, this.beamPtrs[1], this.stateFloats).set(state.c);
    return { batch: 1, buffer: 0, width };
  }

  /** State.select(parents) then step(tokens) for a search's beams: beam b continues beam
   * parents[b] with tokens[b] (web_step_beams, which computes layer 0's recurrent product
   * once per parent). Returns { logits: Float32Array [batch][vocab], beams }; the logits
   * are a view of the module's memory, valid until the next call. */
  stepBeams(tokens, parents, beams) {
    const batch = tokens.length;
    if (parents.length !== batch || batch > beams.width) throw new Error(`${batch} beams of ${beams.width}`);
    const mem = this.x.memory.buffer;
    new Int32Array(mem, this.tokPtr, batch).set(tokens);
    new Int32Array(mem, this.parentPtr, batch).set(parents);
    const [hs, cs] = this.beamPtrs.slice(2 * beams.buffer, 2 * beams.buffer + 2);
    const [hd, cd] = this.beamPtrs.slice(2 - 2 * beams.buffer, 4 - 2 * beams.buffer);
    check(this.x.web_step_beams(batch, this.tokPtr, this.parentPtr, beams.batch, hs, cs, hd, cd,
      this.logitsPtr), "step");
    const logits = new Float32Array(this.x.memory.buffer, this.logitsPtr, batch * this.vocabSize);
    return { logits, beams: { batch, buffer: 1 - beams.buffer, width: beams.width } };
  }

  /** Grow the module-side buffers to hold `lanes` tokens and logits rows, `streams` states. */
  reserve(lanes, streams) {
    const cap = this.capacity;
    if (lanes > cap.lanes) {
      const size = Math.max(lanes, 2 * cap.lanes);
      if (cap.lanes) { this.x.web_free(this.tokPtr); this.x.web_free(this.logitsPtr); }
      this.tokPtr = this.x.web_alloc(4 * size);
      this.logitsPtr = this.x.web_alloc(4 * size * this.vocabSize);
      cap.lanes = size;
    }
    if (streams > cap.streams) {
      const size = Math.max(streams, 2 * cap.streams);
      if (cap.streams) { this.x.web_free(this.hPtr); this.x.web_free(this.cPtr); }
      this.hPtr = this.x.web_alloc(4 * size * this.stateFloats);
      this.cPtr = this.x.web_alloc(4 * size * this.stateFloats);
      cap.streams = size;
    }
    if (!this.tokPtr || !this.logitsPtr || !this.hPtr || !this.cPtr) throw new Error("out of memory");
  }
}

function check(status, what) {
  if (status !== 0) throw new Error(`${what}: ${STATUS[status] ?? "status " + status}`);
}

// ---- 2. the engine: a port of runtime/suggest.py ------------------------------------------

const WORD_CHAR = /^[\p{L}\p{N}_']$/u;  // str.isalnum() or "_'" (letters and numbers)

/** is_word_char: characters that belong to a word; every other character ends one. */
export function isWordChar(ch) {
  return Array.from(ch).length > 0 && Array.from(ch).every((c) => WORD_CHAR.test(c));
}

/** Suggestion: the whole word, the characters to insert, P(completion, then a boundary). */
export class Suggestion {
  constructor(word, completion, probability) {
    this.word = word;
    this.completion = completion;
    this.probability = probability;
  }
}

// _Node: the state after the text up to here (batch 1) and log P(next char) (or null).
const node = (state, logprobs) => ({ state, logprobs });
// _Segment: typed text (code points), its tokens, its end node (null: re-derive).
const segment = (chars, tokens, end) => ({ chars, tokens, end });

/** Suggester: word completions for text typed one keystroke at a time. */
export class Suggester {
  /** Suggester.__init__ (defaults: model.json's engine section, i.e. the Python ones). */
  constructor(model, options = {}) {
    const d = model.config.engine;
    const opts = {
      maxWordLen: d.max_word_len, beamWidth: d.beam_width, history: d.history,
      autoSpace: true, ...options,
    };
    for (const name of ["maxWordLen", "beamWidth", "history"]) {
      if (!Number.isInteger(opts[name]) || opts[name] < 1) {
        throw new Error(`${name} is ${opts[name]} (expected an integer >= 1)`);
      }
    }
    if (typeof opts.autoSpace !== "boolean") throw new Error("autoSpace must be true or false");
    this.model = model;
    this.maxWordLen = opts.maxWordLen;
    this.beamWidth = opts.beamWidth;
    this.history = opts.history;
    this.autoSpace = opts.autoSpace;
    this.prefillChunk = d.prefill_chunk;
    this.attaching = new Set(Array.from(d.attaching_punct));
    this.spaceAt = null;  // text length right after the space accept added
    const vocab = model.config.vocab;
    const unk = model.config.unk_id;
    this.chars = vocab;
    this.ids = new Map();
    vocab.forEach((ch, i) => { if (i !== unk) this.ids.set(ch, i); });
    this.unk = unk;
    this.wordIds = [];
    this.boundaryIds = [];
    vocab.forEach((ch, i) => {
      if (i !== unk) (isWordChar(ch) ? this.wordIds : this.boundaryIds).push(i);
    });
    this.stepCalls = 0;
    this.prime = d.start_context.find((ch) => this.ids.has(ch)) ?? null;
    let state = model.initialState(1);
    let logprobs = null;
    if (this.prime !== null) {
      const out = this.stepModel([this.ids.get(this.prime)], state, 1);
      state = out.state;
      logprobs = logSoftmaxRow(out.logits, 0, this.chars.length);
    }
    this.base = node(state, logprobs);
    this.segments = [];
    this.merged = 0;
    this.length = 0;
  }

  // ---- text editing ----

  /** Suggester.text */
  get text() {
    return this.segments.map((s) => s.chars.join("")).join("");
  }

  /** Suggester.encode: a character outside the vocabulary falls back to its other case,
   * else UNK. `chars` is an array of code points. */
  encode(chars) {
    return Int32Array.from(chars, (ch) =>
      this.ids.get(ch) ?? this.ids.get(ch.toLowerCase()) ?? this.ids.get(ch.toUpperCase()) ?? this.unk);
  }

  /** Suggester.type: append typed or pasted text (one step, or one prefill for a paste). */
  type(text) {
    if (typeof text !== "string") throw new Error("typed text must be a string");
    const chars = Array.from(text);
    if (chars.length && this.replacesSpace(chars[0])) this.backspace(1);
    this.insert(chars);
  }

  /** Suggester._insert */
  insert(chars) {
    if (!chars.length) return;
    this.spaceAt = null;
    let tokens = this.encode(chars);
    if (chars.length === 1) {
      const prev = this.top();
      const out = this.stepModel(tokens, prev.state, 1);
      this.push(segment(chars, tokens, node(out.state, logSoftmaxRow(out.logits, 0, this.chars.length))));
    } else {
      // A pending (backspaced-into) segment is re-derived together with the new text.
      const last = this.segments[this.segments.length - 1];
      if (last && last.end === null) {
        this.segments.pop();
        this.length -= last.chars.length;
        chars = last.chars.concat(chars);
        tokens = Int32Array.from([...last.tokens, ...tokens]);
      }
      for (let start = 0; start < chars.length; start += this.prefillChunk) {
        const end = start + this.prefillChunk;
        this.push(segment(chars.slice(start, end), tokens.slice(start, end), null));
        this.top();
      }
    }
    this.compact();
  }

  /** Suggester.backspace: delete the last n characters (clamped); costs no step. */
  backspace(n = 1) {
    if (!Number.isInteger(n) || n < 0) throw new Error(`backspace count is ${n} (expected an integer >= 0)`);
    n = Math.min(n, this.length);
    if (n) this.spaceAt = null;
    while (n && n >= this.segments[this.segments.length - 1].chars.length) {
      const seg = this.segments.pop();
      n -= seg.chars.length;
      this.length -= seg.chars.length;
    }
    if (n) {
      const i = this.segments.length - 1;
      const seg = this.segments[i];
      this.segments[i] = segment(seg.chars.slice(0, -n), seg.tokens.slice(0, -n), null);
      this.length -= n;
    }
    this.merged = Math.min(this.merged, this.segments.length);
  }

  /** Suggester.reset: forget all text; the primed start state is kept. */
  reset() {
    this.segments = [];
    this.merged = 0;
    this.length = 0;
    this.spaceAt = null;
  }

  /** Suggester.sync: make the typed text equal `text`, keeping the common prefix. */
  sync(text) {
    if (typeof text !== "string") throw new Error("text must be a string");
    const old = Array.from(this.text);
    const now = Array.from(text);
    let common = 0;
    const limit = Math.min(old.length, now.length);
    while (common < limit && old[common] === now[common]) common += 1;
    this.backspace(old.length - common);
    this.insert(now.slice(common));  // the text as given: no punctuation replaces a space
  }

  /** Suggester.accept: insert a suggestion of the current word; returns the text inserted
   * (the rest of the word, plus a space with autoSpace). */
  accept(suggestion) {
    const prefix = this.currentWord();
    if (prefix === null || suggestion.word !== prefix + suggestion.completion) {
      throw new Error(`suggestion ${JSON.stringify(suggestion.word)} does not complete the current word ${JSON.stringify(prefix)}`);
    }
    const inserted = suggestion.completion + (this.autoSpace ? " " : "");
    this.type(inserted);
    if (this.autoSpace) this.spaceAt = this.length;
    return inserted;
  }

  /** Suggester.replaces_space: would typing `ch` now replace the space accept added? */
  replacesSpace(ch) {
    return this.spaceAt === this.length && this.attaching.has(ch);
  }

  // ---- predictions ----

  /** Suggester.current_word: the trailing run of word characters ("" after a boundary);
   * null if longer than maxWordLen. */
  currentWord() {
    const chars = [];
    for (let s = this.segments.length - 1; s >= 0; s -= 1) {
      const seg = this.segments[s].chars;
      for (let i = seg.length - 1; i >= 0; i -= 1) {
        if (!isWordChar(seg[i])) return chars.reverse().join("");
        chars.push(seg[i]);
        if (chars.length > this.maxWordLen) return null;
      }
    }
    return chars.reverse().join("");
  }

  /** Suggester.suggestions: the k most probable completions of the current word, best
   * first (the beam search of the Python engine, step for step). */
  suggestions(k = 3, completeWord = null) {
    if (!Number.isInteger(k) || k < 1) throw new Error(`k is ${k} (expected an integer >= 1)`);
    if (completeWord === null) completeWord = this.autoSpace;
    const prefix = this.currentWord();
    const top = this.top();
    if (prefix === null || top.logprobs === null) return [];
    const W = this.wordIds.length;
    if (!W || !this.boundaryIds.length) return [];
    const V = this.chars.length;
    const maxNew = this.maxWordLen - Array.from(prefix).length;
    const finished = [];  // [log probability, completion]
    if (completeWord && prefix) finished.push([logsumexpAt(top.logprobs, 0, this.boundaryIds), ""]);
    let texts = [""];
    let scores = [0];
    let logprobs = top.logprobs;  // [beams][V] flat, float64
    let beams = null;  // the search's states, in the module (WasmModel.beams)
    for (let depth = 1; depth <= maxNew; depth += 1) {
      const cand = new Float64Array(scores.length * W);
      for (let p = 0; p < scores.length; p += 1) {
        for (let j = 0; j < W; j += 1) cand[p * W + j] = scores[p] + logprobs[p * V + this.wordIds[j]];
      }
      const threshold = kthBest(finished, k);
      // np.argsort(-cand, kind="stable")[:beam_width], then those above the threshold
      const order = bestIndices(cand, this.beamWidth, threshold);
      if (!order.length) break;
      const parents = order.map((i) => Math.floor(i / W));
      const tokens = order.map((i) => this.wordIds[i % W]);
      beams ??= this.model.beams(top.state, this.beamWidth);
      const out = this.stepBeams(tokens, parents, beams);  // _step(tokens, state.select(parents))
      beams = out.beams;
      logprobs = logSoftmaxRows(out.logits, order.length, V);
      scores = order.map((i) => cand[i]);
      texts = parents.map((p, b) => texts[p] + this.chars[tokens[b]]);
      for (let b = 0; b < order.length; b += 1) {
        finished.push([scores[b] + logsumexpAt(logprobs, b * V, this.boundaryIds), texts[b]]);
      }
      if (depth === maxNew) break;
    }
    finished.sort((a, b) => (b[0] - a[0]) || compareCodePoints(a[1], b[1]));
    return finished.slice(0, k).map(([s, t]) => new Suggestion(prefix + t, t, Math.exp(s)));
  }

  // ---- internals ----

  /** Suggester._step: every model call goes through here (counted, as in Python). */
  stepModel(tokens, state, time) {
    this.stepCalls += 1;
    return this.model.step(tokens, state, time);
  }

  /** Suggester._step for a search's beams (counted as one call, as in Python). */
  stepBeams(tokens, parents, beams) {
    this.stepCalls += 1;
    return this.model.stepBeams(tokens, parents, beams);
  }

  /** Suggester._top: the node after the last typed character, re-deriving a pending one. */
  top() {
    if (!this.segments.length) return this.base;
    const seg = this.segments[this.segments.length - 1];
    if (seg.end === null) {
      const prev = this.segments.length > 1 ? this.segments[this.segments.length - 2].end : this.base;
      const T = seg.tokens.length;
      const out = this.stepModel(seg.tokens, prev.state, T);
      seg.end = node(out.state, logSoftmaxRow(out.logits, (T - 1) * this.chars.length, this.chars.length));
    }
    return seg.end;
  }

  /** Suggester._push */
  push(seg) {
    this.segments.push(seg);
    this.length += seg.chars.length;
  }

  /** Suggester._compact: merge segments older than the last `history` ones into chunks. */
  compact() {
    const segs = this.segments;
    while (segs.length - this.merged > this.history) {
      const seg = segs[this.merged];
      const prev = this.merged ? segs[this.merged - 1] : null;
      if (prev && prev.chars.length + seg.chars.length <= this.prefillChunk) {
        segs[this.merged - 1] = segment(prev.chars.concat(seg.chars),
          Int32Array.from([...prev.tokens, ...seg.tokens]), seg.end);
        segs.splice(this.merged, 1);
      } else {
        this.merged += 1;
      }
    }
  }
}

/** _kth_best: the k-th best finished score, -Infinity while fewer than k are finished. */
function kthBest(finished, k) {
  if (finished.length < k) return -Infinity;
  return Float64Array.from(finished, (f) => f[0]).sort()[finished.length - k];  // ascending
}

/** The indices of the `n` largest `values`, best first, ties by index (as
 * np.argsort(-values, kind="stable")[:n]), keeping those above `threshold`. Filtering
 * first selects the same indices (the filter keeps a prefix of the sorted order), and a
 * running top-n list is cheaper than sorting every candidate. */
function bestIndices(values, n, threshold) {
  const best = [];
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (!(v > threshold) || (best.length === n && !(v > values[best[n - 1]]))) continue;
    let at = best.length;
    while (at > 0 && v > values[best[at - 1]]) at -= 1;  // after equal values: by index
    best.splice(at, 0, i);
    if (best.length > n) best.pop();
  }
  return best;
}

/** Python's str ordering: by code point (JS's < compares UTF-16 units). */
function compareCodePoints(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0));
  const y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** _logsumexp over values[offset + ids[i]] (float64; a non-finite max counts as 0). */
function logsumexpAt(values, offset, ids) {
  let m = -Infinity;
  for (const i of ids) m = Math.max(m, values[offset + i]);
  if (!Number.isFinite(m)) m = 0;
  let sum = 0;
  for (const i of ids) sum += Math.exp(values[offset + i] - m);
  return m + Math.log(sum);
}

/** _log_softmax of one row of float32 logits (at `offset`), in float64, into `out` at
 * `at` (a new row by default). Indexed loops, no per-row allocation: the search runs it
 * on every beam of every step. */
function logSoftmaxRow(logits, offset, V, out = new Float64Array(V), at = 0) {
  let m = -Infinity;
  for (let i = 0; i < V; i += 1) m = Math.max(m, logits[offset + i]);
  if (!Number.isFinite(m)) m = 0;
  let sum = 0;
  for (let i = 0; i < V; i += 1) sum += Math.exp(logits[offset + i] - m);
  const lse = m + Math.log(sum);
  for (let i = 0; i < V; i += 1) out[at + i] = logits[offset + i] - lse;
  return out;
}

/** _log_softmax of `rows` rows, as one flat Float64Array [rows][V]. */
function logSoftmaxRows(logits, rows, V) {
  const out = new Float64Array(rows * V);
  for (let r = 0; r < rows; r += 1) logSoftmaxRow(logits, r * V, V, out, r * V);
  return out;
}
