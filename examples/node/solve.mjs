// Solve Sudokus with solve.onnx from Node.js: the loop, halting and verification are in the graph,
// so this is all an app needs (onnxruntime-node, no trm-edge code).
//
//   trm-edge export shipped:sudoku-small -o sudoku_export --solve-graph
//   cd examples/node && ONNXRUNTIME_NODE_INSTALL=skip npm install     # skip: no CUDA binaries wanted
//   node solve.mjs ../../sudoku_export/solve.onnx puzzles.txt [--json]
//
// puzzles.txt holds one Sudoku per line: 81 characters, '.' or '0' for a blank ('#' lines skipped).
// Prints each answer, its steps and whether it verified.
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";

const [graph, file, ...flags] = process.argv.slice(2);
if (!graph || !file) {
  console.error("usage: node solve.mjs SOLVE.onnx PUZZLES.txt [--json]");
  process.exit(2);
}
const puzzles = readFileSync(file, "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
const tokens = new Int32Array(puzzles.length * 81);
puzzles.forEach((puzzle, i) => {
  if (puzzle.length !== 81 || /[^.0-9]/.test(puzzle)) {
    console.error(`puzzle ${i + 1}: a Sudoku is 81 characters of 1-9 and '.' or '0'`);
    process.exit(2);
  }
  for (let c = 0; c < 81; c++) tokens[i * 81 + c] = puzzle[c] === "." || puzzle[c] === "0" ? 1 : Number(puzzle[c]) + 1;
});

const session = await ort.InferenceSession.create(graph, { executionProviders: ["cpu"] });
const started = performance.now();
const out = await session.run({ tokens: new ort.Tensor("int32", tokens, [puzzles.length, 81]) });
const ms = performance.now() - started;
const answer = out.answer.data, steps = out.steps.data, verified = out.verified.data;
for (let i = 0; i < puzzles.length; i++) {
  const text = Array.from(answer.slice(i * 81, (i + 1) * 81), (t) => (t >= 2 && t <= 10 ? String(t - 1) : ".")).join("");
  const row = { puzzle: puzzles[i], answer: text, steps: Number(steps[i]), verified: Boolean(verified[i]) };
  console.log(flags.includes("--json") ? JSON.stringify(row) : `${text}  ${row.steps} steps, ${row.verified ? "verified" : "not verified"}`);
}
if (!flags.includes("--json")) console.error(`${puzzles.length} puzzles in ${ms.toFixed(1)} ms`);
