// The page's solver: ONNX Runtime Web on the export's graphs, no server and no trm-edge code.
//
// Two ways, the same answers: solve.onnx (the loop and the halting inside the graph: one call per
// puzzle, on WASM), or init.onnx + step.onnx in a JavaScript loop (each step's answer shown as it
// comes; the way for WebGPU, which has no Loop kernel). model.json (written by
// `trm-edge export --format web`) holds the sizes, the halting policy and example puzzles.
import * as ort from "./ort/ort.all.min.mjs";

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;  // relative to this page, not to ort/
ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;

const $ = (id) => document.getElementById(id);
const model = await (await fetch("model.json")).json();
const sessions = new Map();

function session(file, ep) {
  const key = `${file}/${ep}`;
  if (!sessions.has(key)) sessions.set(key, ort.InferenceSession.create(file, { executionProviders: [ep] }));
  return sessions.get(key);
}

function tokensOf(text) {
  const cells = text.replace(/\s+/g, "");
  if (cells.length !== 81 || /[^.0-9]/.test(cells)) throw new Error("a Sudoku is 81 characters of 1-9 and '.' or '0'");
  return Int32Array.from(cells, (c) => (c === "." || c === "0" ? 1 : Number(c) + 1));
}

const textOf = (answer) => Array.from(answer, (t) => (t >= 2 && t <= 10 ? String(t - 1) : ".")).join("");

// A valid grid (each digit once per row, column and box) that keeps every given: Sudoku's rule.
function verifies(puzzle, answer) {
  for (let i = 0; i < 81; i++) {
    if (answer[i] < 2 || answer[i] > 10 || (puzzle[i] > 1 && answer[i] !== puzzle[i])) return false;
  }
  for (let u = 0; u < 9; u++) {
    const seen = [new Set(), new Set(), new Set()];
    for (let k = 0; k < 9; k++) {
      const box = 27 * Math.floor(u / 3) + 3 * (u % 3) + 9 * Math.floor(k / 3) + (k % 3);
      seen[0].add(answer[9 * u + k]); seen[1].add(answer[9 * k + u]); seen[2].add(answer[box]);
    }
    if (seen.some((s) => s.size !== 9)) return false;
  }
  return true;
}

// One puzzle through solve.onnx: {answer, steps, verified}.
async function solveByGraph(puzzle) {
  const solve = await session("solve.onnx", "wasm");
  const out = await solve.run({ tokens: new ort.Tensor("int32", puzzle, [1, 81]) });
  return { answer: Int32Array.from(out.answer.data), steps: Number(out.steps.data[0]), verified: Boolean(out.verified.data[0]),
           trace: [] };
}

// One puzzle through init.onnx + step.onnx, halting as the export's default policy does.
async function solveByLoop(puzzle, ep, onStep) {
  const [init, step] = await Promise.all([session("init.onnx", ep), session("step.onnx", ep)]);
  const { x_emb } = await init.run({ tokens: new ort.Tensor("int32", puzzle, [1, 81]) });
  const shape = [1, model.state_len, model.hidden_size];
  let zH = new ort.Tensor("float32", new Float32Array(shape[1] * shape[2]), shape);
  let zL = new ort.Tensor("float32", new Float32Array(shape[1] * shape[2]), shape);
  const policy = model.halting;
  let previous = null, unchanged = 0, steps = 0, answer = null, verified = false;
  const trace = [];
  while (true) {
    steps += 1;
    const reset = new ort.Tensor("bool", Uint8Array.of(steps === 1 ? 1 : 0), [1]);
    const out = await step.run({ x_emb, z_H: zH, z_L: zL, reset });
    zH = out.z_H_next; zL = out.z_L_next;
    answer = Int32Array.from(out.answer.data);
    const q = out.q_halt.data[0], score = model.rule === "q_halt>0" ? q : q - out.q_continue.data[0];
    const same = previous !== null && answer.every((t, i) => t === previous[i]);
    unchanged = same && steps > 1 ? unchanged + 1 : 0;
    verified = verifies(puzzle, answer);
    const changed = previous === null ? 81 : answer.reduce((n, t, i) => n + (t !== previous[i]), 0);
    trace.push({ step: steps, changed, verified });
    onStep?.(steps, answer, previous, verified);
    const done = steps >= policy.max_steps || (policy.verified && verified)
      || (policy.fixed !== null && steps >= policy.fixed) || (policy.model && score > 0)
      || (policy.threshold !== null && 1 / (1 + Math.exp(-score)) >= policy.threshold)
      || (policy.stable !== null && unchanged >= policy.stable) || (policy.cap !== null && steps >= policy.cap);
    if (done) break;
    previous = answer;
  }
  return { answer, steps, verified, trace };
}

function draw(puzzle, answer, previous) {
  const rows = [];
  for (let r = 0; r < 9; r++) {
    const cells = [];
    for (let c = 0; c < 9; c++) {
      const i = 9 * r + c, t = answer ? answer[i] : puzzle[i];
      const kind = puzzle[i] > 1 ? "given" : "filled";
      const changed = previous && answer && previous[i] !== answer[i] ? " changed" : "";
      cells.push(`<td class="${kind}${changed}">${t >= 2 && t <= 10 ? t - 1 : ""}</td>`);
    }
    rows.push(`<tr>${cells.join("")}</tr>`);
  }
  $("grid").innerHTML = rows.join("");
}

async function solve(text, engine, show = true) {
  const puzzle = tokensOf(text);
  const started = performance.now();
  const onStep = show ? (n, answer, previous, ok) => {
    draw(puzzle, answer, previous);
    const changed = previous === null ? "the first answer" : `${answer.reduce((k, t, i) => k + (t !== previous[i]), 0)} cells changed`;
    $("steps").insertAdjacentHTML("beforeend", `<li>step ${n}: ${changed}, ${ok ? "verified" : "not verified yet"}</li>`);
  } : null;
  const result = engine === "graph-wasm" ? await solveByGraph(puzzle)
    : await solveByLoop(puzzle, engine === "loop-webgpu" ? "webgpu" : "wasm", onStep);
  result.ms = performance.now() - started;
  return result;
}

function report(result, engine) {
  const el = $("result");
  el.className = result.verified ? "verified" : "unverified";
  const how = { "graph-wasm": "solve.onnx on WASM", "loop-wasm": "a step loop on WASM", "loop-webgpu": "a step loop on WebGPU" };
  el.textContent = `${result.verified ? `verified at step ${result.steps}` : `not verified after ${result.steps} steps`}` +
    ` in ${result.ms.toFixed(1)} ms (${how[engine]})`;
  Object.assign(el.dataset, { state: "done", answer: textOf(result.answer), steps: String(result.steps),
                              verified: String(result.verified), ms: result.ms.toFixed(2), engine });
}

async function onSolve() {
  const engine = $("engine").value;
  $("steps").innerHTML = ""; $("result").dataset.state = "running"; $("status").textContent = "solving...";
  try {
    const result = await solve($("puzzle").value, engine);
    draw(tokensOf($("puzzle").value), result.answer, null);
    report(result, engine);
    $("status").textContent = "";
  } catch (error) {
    $("result").dataset.state = "error";
    $("status").textContent = `error: ${error.message}`;
  }
}

// Puzzles per second, one puzzle per call (as an app solving what a user types does).
window.trmBench = async (count, engine = "graph-wasm") => {
  const puzzles = model.examples.slice(0, count);
  await solve(puzzles[0], engine, false);  // load and warm up
  const started = performance.now();
  let verified = 0;
  for (const text of puzzles) verified += (await solve(text, engine, false)).verified ? 1 : 0;
  const seconds = (performance.now() - started) / 1000;
  return { engine, puzzles: puzzles.length, seconds, puzzles_per_s: puzzles.length / seconds, verified,
           threads: ort.env.wasm.numThreads };
};

window.trmSolve = async (text, engine) => {
  const result = await solve(text, engine, false);
  return { answer: textOf(result.answer), steps: result.steps, verified: result.verified, ms: result.ms,
           trace: result.trace };
};

for (const [i, text] of model.examples.slice(0, 12).entries()) {
  $("examples").insertAdjacentHTML("beforeend", `<option value="${text}">puzzle ${i + 1}</option>`);
}
$("examples").addEventListener("change", () => { $("puzzle").value = $("examples").value; draw(tokensOf($("puzzle").value), null, null); });
$("puzzle").value = model.examples[0];
draw(tokensOf(model.examples[0]), null, null);
if (navigator.gpu) $("engine").insertAdjacentHTML("beforeend", `<option value="loop-webgpu">step by step on WebGPU</option>`);
$("status").textContent = "loading the model into ONNX Runtime Web...";
await Promise.all([session("solve.onnx", "wasm"), session("init.onnx", "wasm"), session("step.onnx", "wasm")]);
$("solve").addEventListener("click", onSolve);
$("solve").disabled = false;
$("model").textContent = `${model.name}: ${model.parameters.toLocaleString()} parameters, halting ${model.halting.name}, ` +
  `ONNX Runtime Web ${ort.env.versions?.web ?? ""}, ${ort.env.wasm.numThreads} WASM thread(s)`;
$("status").textContent = "ready";
$("status").dataset.state = "ready";
