/**
 * Wall time of the whole integration suite (test/integration, the real workflow in the sandbox), run as
 * CI runs it. Prints the figure and vitest's own counts. The budget is issue #13's, set when the sandbox became
 * realistic over time (namespaces that terminate, pods with grace periods): the whole `npm test` under 20 minutes
 * on this 2-core machine, of which this suite is the largest part. (The first version's 3 minutes predates that.)
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const started = performance.now();
const run = spawnSync("npx", ["vitest", "run", "test/integration"], { cwd: ROOT, encoding: "utf8", env: process.env });
const seconds = (performance.now() - started) / 1000;
const summary = (run.stdout + run.stderr)
  .split("\n")
  .filter((l) => /Test Files|Tests /.test(l))
  .map((l) => l.replace(/\x1b\[[0-9;]*m/g, "").trim());
console.log(summary.join("\n"));
console.log(`integration suite: ${seconds.toFixed(1)} s wall (the whole npm test's budget: < 1200 s), exit ${run.status}`);
process.exitCode = run.status ?? 1;
