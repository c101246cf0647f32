// Runs a site's engine.js and model.wasm in Node for tests/web (no browser needed).
// Usage: node node_runner.mjs SITE_DIR < request.json; prints one JSON answer. Every
// request may name the module to run ("module": "model-relaxed.wasm"; default model.wasm).
// Requests: {"mode": "logits", "streams": [[tok, ...], ...], "single": bool}: the logits of
//   every step of every stream (all streams batched into one step call per position, or
//   with "single" each stream alone, one token per call, or "prefill": one call per stream);
//   {"mode": "script", "options": {...}, "ops": [[op, arg], ...]}: drive a Suggester.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const site = process.argv[2];
// engine.js is an ES module served as such to browsers; Node would read a bare .js file as
// CommonJS, so it is imported from a data: URL (always a module).
const source = readFileSync(join(site, "engine.js"), "utf8");
const engine = await import("data:text/javascript;base64," + Buffer.from(source).toString("base64"));
const config = JSON.parse(readFileSync(join(site, "model.json"), "utf8"));
const request = JSON.parse(readFileSync(0, "utf8"));
// "module": the site's module file to run (model.wasm by default, or model-relaxed.wasm).
const file = request.module ?? config.wasm;
const model = await engine.WasmModel.instantiate(readFileSync(join(site, file)), config, file);

function logits(req) {
  const streams = req.streams;
  const V = model.vocabSize;
  const out = streams.map(() => []);
  if (req.mode === "prefill") {
    streams.forEach((toks, b) => {
      const r = model.step(toks, model.initialState(1), toks.length);
      for (let t = 0; t < toks.length; t += 1) out[b].push(Array.from(r.logits.subarray(t * V, (t + 1) * V)));
    });
    return out;
  }
  const T = streams[0].length;
  if (req.mode === "single") {
    streams.forEach((toks, b) => {
      let state = model.initialState(1);
      for (let t = 0; t < T; t += 1) {
        const r = model.step([toks[t]], state, 1);
        state = r.state;
        out[b].push(Array.from(r.logits));
      }
    });
    return out;
  }
  let state = model.initialState(streams.length);
  for (let t = 0; t < T; t += 1) {
    const r = model.step(streams.map((s) => s[t]), state, 1);
    state = r.state;
    streams.forEach((_, b) => out[b].push(Array.from(r.logits.subarray(b * V, (b + 1) * V))));
  }
  return out;
}

// {"mode": "beams", "prefix": [tok, ...], "tokens": [[tok, ...], [tok, ...]], "parents":
// [[0, ...], [p, ...]]}: two depths of a search from the state after `prefix`, stepped as
// the engine steps beams (WasmModel.stepBeams) and as selected states stepped one by one
// (the Python engine's state.select then step); the logits of both ways, per depth.
function beams(req) {
  const start = model.step(req.prefix, model.initialState(1), req.prefix.length).state;
  const select = (state, idx) => {
    const n = model.stateFloats;
    const h = new Float32Array(idx.length * n);
    const c = new Float32Array(idx.length * n);
    idx.forEach((p, b) => {
      h.set(state.h.subarray(p * n, (p + 1) * n), b * n);
      c.set(state.c.subarray(p * n, (p + 1) * n), b * n);
    });
    return new engine.State(idx.length, h, c);
  };
  const fused = [];
  const stepped = [];
  let handle = model.beams(start, 16);
  let state = start;
  req.tokens.forEach((tokens, d) => {
    const out = model.stepBeams(tokens, req.parents[d], handle);
    fused.push(Array.from(out.logits));
    handle = out.beams;
    const r = model.step(tokens, select(state, req.parents[d]), 1);
    stepped.push(Array.from(r.logits));
    state = r.state;
  });
  return { fused, stepped };
}

function script(req) {
  const s = new engine.Suggester(model, req.options ?? {});
  const results = [];
  let last = [];
  for (const [op, arg] of req.ops) {
    if (op === "type") s.type(arg);
    else if (op === "sync") s.sync(arg);
    else if (op === "backspace") s.backspace(arg);
    else if (op === "accept") results.push(s.accept(last[arg]));
    else if (op === "replaces") results.push(s.replacesSpace(arg));
    else if (op === "text") results.push(s.text);
    else if (op === "suggest") {
      last = s.suggestions(arg);
      results.push(last.map((x) => [x.word, x.completion, x.probability]));
    } else throw new Error(`unknown op ${op}`);
  }
  return { results, step_calls: s.stepCalls };
}

// {"mode": "word_chars", "chars": "..."}: engine.isWordChar of each code point.
const answer =
  request.mode === "script" ? script(request)
  : request.mode === "word_chars" ? Array.from(request.chars, (ch) => engine.isWordChar(ch))
  : request.mode === "beams" ? beams(request)
  : logits(request);
process.stdout.write(JSON.stringify(answer));
