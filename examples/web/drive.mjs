// Drive the page `trm-edge export --format web` writes in headless Chromium (Debian's chromium, through
// playwright-core; no browser download), as a person would: pick a puzzle, press Solve, read the answer.
//
//   node drive.mjs solve URL SCREENSHOT.png [ENGINE] [EXAMPLE]   # one puzzle through the page's controls
//   node drive.mjs compare URL [COUNT]                           # examples: solve.onnx against the step loop
//   node drive.mjs bench URL COUNT [ENGINE]                      # puzzles/s, one puzzle per call
//
// Prints one JSON object. CHROMIUM names the browser (default /usr/bin/chromium).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [mode, url, ...rest] = process.argv.slice(2);
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "trm-edge-chromium-")), {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 980, height: 760 },
  // A closed network: no background fetches, no sandbox as root.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = browser.pages()[0] ?? (await browser.newPage());
const problems = [];
page.on("pageerror", (error) => problems.push(String(error)));
page.on("console", (message) => { if (message.type() === "error") problems.push(message.text()); });
try {
  await page.goto(url);
  await page.waitForSelector('#status[data-state="ready"]', { timeout: 120000 });
  let out;
  if (mode === "solve") {
    const [screenshot, engine = "graph-wasm", example = "0"] = rest;
    await page.selectOption("#examples", { index: Number(example) });
    await page.selectOption("#engine", engine);
    await page.click("#solve");
    await page.waitForSelector('#result[data-state="done"], #result[data-state="error"]', { state: "attached",
                                                                                             timeout: 120000 });
    out = { ...(await page.$eval("#result", (el) => ({ ...el.dataset, text: el.textContent }))),
            puzzle: await page.inputValue("#puzzle"), steps_shown: await page.$$eval("#steps li", (li) => li.length),
            status: await page.textContent("#status") };
    await page.screenshot({ path: screenshot, fullPage: true });
  } else if (mode === "compare") {
    out = await page.evaluate(async (count) => {
      const model = await (await fetch("model.json")).json();
      const rows = [];
      for (const puzzle of model.examples.slice(0, count)) {
        rows.push({ puzzle, graph: await window.trmSolve(puzzle, "graph-wasm"), loop: await window.trmSolve(puzzle, "loop-wasm") });
      }
      return { rows };
    }, Number(rest[0] ?? 1000));
  } else if (mode === "bench") {
    const [count = "32", engine = "graph-wasm"] = rest;
    out = await page.evaluate(([n, e]) => window.trmBench(n, e), [Number(count), engine]);
  } else {
    throw new Error(`unknown mode ${mode}: solve | compare | bench`);
  }
  console.log(JSON.stringify({ ...out, problems, userAgent: await page.evaluate(() => navigator.userAgent) }));
} finally {
  await browser.close();
}
