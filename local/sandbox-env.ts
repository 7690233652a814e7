/**
 * `.sandbox/env`: the sandbox's environment as `npm start` writes it for a shell to source, and as
 * `npm run demo` reads it back. Only node:fs here, so the CLI can read it without loading the sandbox.
 */
import { readFileSync, writeFileSync } from "node:fs";

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function writeSandboxEnv(file: string, env: Record<string, string>): void {
  const lines = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
  writeFileSync(file, `# nf-eks-provisioner sandbox: source this file, then use aws (--endpoint-url) and kubectl\n${lines.join("\n")}\n`, {
    mode: 0o600,
  });
}

/** The variables an env file written by writeSandboxEnv exports (throws when it cannot be read). */
export function readSandboxEnv(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of readFileSync(file, "utf8").matchAll(/^export ([A-Z0-9_]+)='((?:[^']|'\\'')*)'$/gm))
    env[m[1]!] = m[2]!.replace(/'\\''/g, "'");
  return env;
}
