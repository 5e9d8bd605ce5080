#!/usr/bin/env node
// Cargo runner for wasm32-wasip1: runs a test binary (or any WASI command) under Node's WASI, so the
// filters' logic tests also run compiled to Wasm, 32-bit, as in Envoy. Used via .cargo/config.toml.
// Usage: wasi-runner.mjs <module.wasm> [args...]
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [wasmPath, ...args] = process.argv.slice(2);
if (!wasmPath) {
  console.error('usage: wasi-runner.mjs <module.wasm> [args...]');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: [wasmPath, ...args],
  env: process.env,
  preopens: { '.': process.cwd() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
// The proxy-wasm crate exports its dispatch functions, so a test binary still imports Envoy's hostcalls
// from "env". Logic tests must never reach the host: each stub throws, failing the test loudly.
const imports = wasi.getImportObject();
const env = {};
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.module === 'env' && imp.kind === 'function') {
    env[imp.name] = () => { throw new Error(`hostcall ${imp.name} called from a logic test`); };
  }
}
imports.env = env;
const instance = await WebAssembly.instantiate(module, imports);
process.exitCode = wasi.start(instance);
