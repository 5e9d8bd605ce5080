#!/usr/bin/env node
// A proxy-wasm host that counts: runs a chain of the shipped modules on requests the way Envoy drives
// them, and counts every call a module makes across the Wasm boundary (each `env` import and each WASI
// import) and every callback the host enters, per request. `meshplug bench calls` and the host-call
// tests use it; speed is measured in Envoy (`meshplug bench`), never here.
//
// What it mirrors (proxy-wasm ABI 0.2.1 as Envoy implements it):
// - proxy-wasm-cpp-host `src/context.cc`: a filter's callbacks per request — onCreate
//   (`proxy_on_context_create`), onRequestHeaders, onRequestBody (only with a body), onResponseHeaders,
//   onResponseBody (only with a body), onLog, onDone, onDelete — each entered only when the module
//   exports it (`src/wasm.cc` `getFunctions`: a callback not exported is null and skipped);
// - Envoy `source/extensions/filters/http/wasm`: decoders in chain order, encoders in reverse order; a
//   filter that answers with a local response stops decoding, and the reply goes through the encoders
//   of the filters before it and its own;
// - proxy-wasm-cpp-host `src/exports.cc` and Envoy `source/extensions/common/wasm/context.cc` for what
//   each host function returns: header maps as `[n][klen vlen]…[k\0 v\0]…`, property paths split on
//   `\0`, shared data compare-and-swap (`shared_data.cc`: a CAS on a missing key succeeds), statuses
//   (0 Ok, 1 NotFound, 2 BadArgument, 8 CasMismatch, 12 Unimplemented).
//
// Input (stdin, JSON): { "filters": [{ "module", "root_id", "config" }], "requests": [{ "headers":
// [[name, value], …], "body": "…" | null }], "response": { "headers": [[name, value], …], "body": "…" } }
// Output (stdout, JSON): per request { "calls": { name: n }, "callbacks": { name: n }, "per_filter":
// [{ "calls": {…}, "callbacks": {…} }], "local_response": status | null, "upstream_headers": [[k, v]…] }.

import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
import process from 'node:process';

const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, CAS_MISMATCH = 8, UNIMPLEMENTED = 12;
const MAP_REQUEST = 0, MAP_RESPONSE = 2;
const BUFFER_REQUEST_BODY = 0, BUFFER_RESPONSE_BODY = 1, BUFFER_VM_CONFIG = 6, BUFFER_PLUGIN_CONFIG = 7;
const ACTION_CONTINUE = 0;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false });

const spec = JSON.parse(readFileSync(0, 'utf8'));
// Envoy keeps shared data per VM id; every meshplug module runs with an empty vm_id, so one store.
const shared = new Map();
let casCounter = 1;
let now = BigInt(Date.now()) * 1_000_000n; // ns, from the real clock (tokens are minted now); +1 µs per read

function addCount(counts, name) {
  counts[name] = (counts[name] || 0) + 1;
}

class Filter {
  constructor(def, index) {
    this.def = def;
    this.rootId = 1000 + index * 10;
    this.nextContext = this.rootId + 1;
    this.calls = {};
    this.callbacks = {};
    this.properties = new Map();
    const module = new WebAssembly.Module(readFileSync(def.module));
    this.exportNames = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    this.wasi = new WASI({ version: 'preview1', args: [], env: {}, returnOnExit: true });
    const wasiImports = this.wasi.getImportObject().wasi_snapshot_preview1;
    const imports = { env: {}, wasi_snapshot_preview1: {} };
    const host = this.hostFunctions();
    for (const imp of WebAssembly.Module.imports(module)) {
      if (imp.kind !== 'function') continue;
      const name = imp.name;
      if (imp.module === 'env') {
        const f = host[name] || (() => UNIMPLEMENTED);
        imports.env[name] = (...args) => {
          addCount(this.calls, name);
          return f(...args);
        };
      } else if (imp.module === 'wasi_snapshot_preview1') {
        const f = wasiImports[name];
        imports.wasi_snapshot_preview1[name] = (...args) => {
          addCount(this.calls, name);
          return f(...args);
        };
      }
    }
    this.instance = new WebAssembly.Instance(module, imports);
    this.wasi.initialize(this.instance);
    this.x = this.instance.exports;
  }

  mem() {
    return new Uint8Array(this.x.memory.buffer);
  }
  view() {
    return new DataView(this.x.memory.buffer);
  }
  read(ptr, len) {
    return this.mem().slice(ptr, ptr + len);
  }
  str(ptr, len) {
    return dec.decode(this.read(ptr, len));
  }
  // Hands bytes to the module as Envoy does: allocated by the module, pointer and size written back.
  give(bytes, retPtr, retSize) {
    const p = bytes.length === 0 ? 0 : this.x.proxy_on_memory_allocate(bytes.length);
    if (bytes.length) this.mem().set(bytes, p);
    this.view().setUint32(retPtr, p, true);
    this.view().setUint32(retSize, bytes.length, true);
    return OK;
  }
  map(type) {
    if (type === MAP_REQUEST) return this.request.headers;
    if (type === MAP_RESPONSE) return this.request.responseHeaders;
    return null;
  }

  hostFunctions() {
    const serializePairs = (pairs) => {
      const parts = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
      let size = 4 + parts.length * 8;
      for (const [k, v] of parts) size += k.length + v.length + 2;
      const out = new Uint8Array(size);
      const dv = new DataView(out.buffer);
      dv.setUint32(0, parts.length, true);
      let at = 4;
      for (const [k, v] of parts) {
        dv.setUint32(at, k.length, true);
        dv.setUint32(at + 4, v.length, true);
        at += 8;
      }
      for (const [k, v] of parts) {
        out.set(k, at);
        at += k.length + 1;
        out.set(v, at);
        at += v.length + 1;
      }
      return out;
    };
    return {
      proxy_log: (level, ptr, len) => {
        if (process.env.PROXY_WASM_HOST_LOG) process.stderr.write(`[${this.def.root_id}] ${this.str(ptr, len)}\n`);
        return OK;
      },
      proxy_get_current_time_nanoseconds: (ret) => {
        now += 1000n;
        this.view().setBigUint64(ret, now, true);
        return OK;
      },
      proxy_set_tick_period_milliseconds: () => OK,
      proxy_get_buffer_bytes: (type, start, max, retPtr, retSize) => {
        let bytes;
        if (type === BUFFER_PLUGIN_CONFIG) bytes = enc.encode(this.def.config);
        else if (type === BUFFER_VM_CONFIG) bytes = new Uint8Array();
        else if (type === BUFFER_REQUEST_BODY) bytes = enc.encode(this.request?.body || '');
        else if (type === BUFFER_RESPONSE_BODY) bytes = enc.encode(this.request?.responseBody || '');
        else return NOT_FOUND;
        return this.give(bytes.slice(start >>> 0, (start >>> 0) + (max >>> 0)), retPtr, retSize);
      },
      proxy_get_header_map_pairs: (type, retPtr, retSize) => {
        const m = this.map(type);
        if (!m) return NOT_FOUND;
        return this.give(serializePairs(m), retPtr, retSize);
      },
      proxy_get_header_map_value: (type, kPtr, kLen, retPtr, retSize) => {
        const m = this.map(type);
        if (!m) return NOT_FOUND;
        const key = this.str(kPtr, kLen).toLowerCase();
        const hit = m.find(([k]) => k === key);
        if (!hit) return NOT_FOUND;
        return this.give(enc.encode(hit[1]), retPtr, retSize);
      },
      proxy_replace_header_map_value: (type, kPtr, kLen, vPtr, vLen) => {
        const m = this.map(type);
        if (!m) return NOT_FOUND;
        const key = this.str(kPtr, kLen).toLowerCase();
        const value = this.str(vPtr, vLen);
        const i = m.findIndex(([k]) => k === key);
        if (i >= 0) {
          m[i] = [key, value];
          for (let j = m.length - 1; j > i; j--) if (m[j][0] === key) m.splice(j, 1);
        } else m.push([key, value]);
        return OK;
      },
      proxy_add_header_map_value: (type, kPtr, kLen, vPtr, vLen) => {
        const m = this.map(type);
        if (!m) return NOT_FOUND;
        m.push([this.str(kPtr, kLen).toLowerCase(), this.str(vPtr, vLen)]);
        return OK;
      },
      proxy_remove_header_map_value: (type, kPtr, kLen) => {
        const m = this.map(type);
        if (!m) return NOT_FOUND;
        const key = this.str(kPtr, kLen).toLowerCase();
        for (let j = m.length - 1; j >= 0; j--) if (m[j][0] === key) m.splice(j, 1);
        return OK;
      },
      proxy_set_header_map_pairs: () => UNIMPLEMENTED,
      proxy_get_property: (pPtr, pLen, retPtr, retSize) => {
        const path = this.str(pPtr, pLen).replace(/\0+$/, '');
        const fixed = {
          'plugin_root_id': this.def.root_id,
          'plugin_name': this.def.root_id,
          'source\0address': '127.0.0.1:40000',
          'source\0port': '40000',
          'destination\0address': '127.0.0.1:10000',
        };
        const v = this.properties.has(path) ? this.properties.get(path) : fixed[path];
        if (v === undefined) return NOT_FOUND;
        return this.give(typeof v === 'string' ? enc.encode(v) : v, retPtr, retSize);
      },
      proxy_set_property: (pPtr, pLen, vPtr, vLen) => {
        this.properties.set(this.str(pPtr, pLen).replace(/\0+$/, ''), this.read(vPtr, vLen));
        return OK;
      },
      proxy_get_shared_data: (kPtr, kLen, retPtr, retSize, retCas) => {
        const e = shared.get(this.str(kPtr, kLen));
        if (!e) return NOT_FOUND;
        this.give(e.value, retPtr, retSize);
        this.view().setUint32(retCas, e.cas, true);
        return OK;
      },
      proxy_set_shared_data: (kPtr, kLen, vPtr, vLen, cas) => {
        const key = this.str(kPtr, kLen);
        const e = shared.get(key);
        if (e && cas !== 0 && cas !== e.cas) return CAS_MISMATCH;
        shared.set(key, { value: this.read(vPtr, vLen), cas: ++casCounter });
        return OK;
      },
      proxy_continue_stream: () => OK,
      proxy_send_local_response: (status) => {
        this.request.localResponse = status;
        return OK;
      },
      proxy_set_effective_context: () => OK,
      proxy_define_metric: (type, nPtr, nLen, ret) => {
        this.view().setUint32(ret, 1 + (this.metricCount = (this.metricCount || 0) + 1), true);
        return OK;
      },
      proxy_increment_metric: () => OK,
      proxy_record_metric: () => OK,
      proxy_get_metric: () => NOT_FOUND,
      proxy_call_foreign_function: () => NOT_FOUND,
      proxy_http_call: () => BAD_ARGUMENT,
      proxy_grpc_call: () => BAD_ARGUMENT,
    };
  }

  // Enters an exported callback, counting it; a callback the module does not export is not entered.
  enter(name, ...args) {
    if (!this.exportNames.has(name)) return undefined;
    addCount(this.callbacks, name);
    return this.x[name](...args);
  }

  start() {
    this.enter('proxy_on_context_create', this.rootId, 0);
    this.enter('proxy_on_vm_start', this.rootId, 0);
    const ok = this.enter('proxy_on_configure', this.rootId, enc.encode(this.def.config).length);
    if (ok === 0) throw new Error(`${this.def.module}: proxy_on_configure refused the config`);
  }
}

const filters = spec.filters.map((def, i) => new Filter(def, i));
for (const f of filters) f.start();

const results = [];
for (const req of spec.requests) {
  const state = {
    headers: req.headers.map(([k, v]) => [k.toLowerCase(), v]),
    body: req.body ?? null,
    responseHeaders: spec.response.headers.map(([k, v]) => [k.toLowerCase(), v]),
    responseBody: spec.response.body ?? '',
    localResponse: null,
  };
  for (const f of filters) {
    f.calls = {};
    f.callbacks = {};
    f.request = state;
    f.ctx = f.nextContext++;
    f.enter('proxy_on_context_create', f.ctx, f.rootId);
  }
  let reached = filters.length;
  for (let i = 0; i < filters.length; i++) {
    const f = filters[i];
    const action = f.enter('proxy_on_request_headers', f.ctx, state.headers.length, state.body === null ? 1 : 0);
    if (state.localResponse === null && action === ACTION_CONTINUE && state.body !== null) {
      f.enter('proxy_on_request_body', f.ctx, state.body.length, 1);
    }
    if (state.localResponse !== null || action !== ACTION_CONTINUE) {
      reached = i + 1;
      break;
    }
  }
  const upstream = state.localResponse === null ? state.headers.map((p) => [...p]) : null;
  if (state.localResponse !== null) {
    state.responseHeaders = [[':status', String(state.localResponse)]];
  }
  for (let i = reached - 1; i >= 0; i--) {
    const f = filters[i];
    f.enter('proxy_on_response_headers', f.ctx, state.responseHeaders.length, state.responseBody ? 0 : 1);
    if (state.responseBody) f.enter('proxy_on_response_body', f.ctx, state.responseBody.length, 1);
  }
  for (const f of filters) {
    f.enter('proxy_on_log', f.ctx);
    f.enter('proxy_on_done', f.ctx);
    f.enter('proxy_on_delete', f.ctx);
  }
  const calls = {}, callbacks = {};
  for (const f of filters) {
    for (const [k, n] of Object.entries(f.calls)) calls[k] = (calls[k] || 0) + n;
    for (const [k, n] of Object.entries(f.callbacks)) callbacks[k] = (callbacks[k] || 0) + n;
  }
  results.push({
    calls,
    callbacks,
    per_filter: filters.map((f) => ({ calls: f.calls, callbacks: f.callbacks })),
    local_response: state.localResponse,
    upstream_headers: upstream,
    response_headers: state.responseHeaders,
  });
}
process.stdout.write(JSON.stringify(results));
