/**
 * How long `npm start` takes to be ready: spawns the real command (as a user types it), waits for the
 * line that says the sandbox is ready, then stops it with SIGINT and times the clean shutdown.
 * Target: ready in under 5 s. Prints one line of figures per run and the median.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const READY = /sandbox ready/i;

async function once(): Promise<{ readyMs: number; stopMs: number }> {
  const started = performance.now();
  // Ephemeral ports and a throwaway state dir, so the bench never collides with a running sandbox.
  const child = spawn(
    "npm",
    ["start", "--silent", "--", "--port", "0", "--aws-port", "0", "--kube-port", "0", "--sfn-port", "0", "--state-dir", ".sandbox/bench"],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  let output = "";
  const readyMs = await new Promise<number>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready after 30 s:\n${output}`)), 30_000);
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (READY.test(output)) {
        clearTimeout(timer);
        resolveReady(performance.now() - started);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`npm start exited ${code} before ready:\n${output}`)));
  });
  child.removeAllListeners("exit");
  const stopping = performance.now();
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  process.kill(-child.pid!, "SIGINT");
  await exited;
  return { readyMs, stopMs: performance.now() - stopping };
}

const results: Array<{ readyMs: number; stopMs: number }> = [];
for (let i = 0; i < RUNS; i++) {
  const r = await once();
  results.push(r);
  console.log(`npm start run ${i + 1}: ready in ${(r.readyMs / 1000).toFixed(2)} s, stopped in ${(r.stopMs / 1000).toFixed(2)} s`);
}
const median = results.map((r) => r.readyMs).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
console.log(`npm start ready: median ${(median / 1000).toFixed(2)} s over ${RUNS} runs (target < 5 s)`);
