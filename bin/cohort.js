#!/usr/bin/env node
// The `cohort` command: runs the compiled CLI (build with `npm run build`).
import { existsSync } from 'node:fs';
const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('cohort: not built yet; run `npm install && npm run build` in the package folder');
  process.exit(4);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv);
