//! Every host call meshplug makes on a request path, as functions that cannot panic.
//!
//! proxy-wasm 0.2.5's `hostcalls` panic on any host status they do not expect (`set_map_value`,
//! `add_map_value`, `set_property`, `send_http_response`, `resume_http_request`, `get_map*`, ... end in
//! `panic!("unexpected status")`), and its map readers decode names and values with
//! `String::from_utf8(..).unwrap()`: one request header that is not UTF-8 traps the VM (checked on
//! Envoy 1.40). A trapped VM answers 503 under FAIL_CLOSED and skips the filter under FAIL_OPEN. So
//! meshplug declares the proxy-wasm ABI imports itself (the same `env` imports the SDK declares; the
//! status comes back as a plain `u32`, so an unknown value cannot be an invalid enum) and decodes what
//! the host returns with [`crate::wire`], which refuses a malformed map instead of indexing into it.
//!
//! Policy for a status that is not Ok: the wrapper returns `Err(status)`; callers take the documented
//! safe action and log it through `wasm::HostErrorLog` (at most once a minute per kind). The SDK is still used for the context lifecycle (its dispatcher) and for
//! `dispatch_http_call`, whose callout it must register; that helper panics only on statuses other
//! than Ok, BadArgument and InternalFailure, which are the only ones Envoy's `httpCall` returns for
//! arguments in valid memory (Envoy `source/extensions/common/wasm/context.cc`, `Context::httpCall`).
//!
//! This is the only module with `unsafe` code: raw pointers into the module's own memory, handed to
//! the host for the duration of one call, and buffers the host allocated through the SDK's
//! `proxy_on_memory_allocate` (a boxed slice of exactly the returned size), taken back the way the SDK
//! takes them back.
#![allow(unsafe_code)]

use std::ptr::{null, null_mut};
use std::time::Duration;

/// A proxy-wasm status other than Ok (0): 1 NotFound, 2 BadArgument, 7 Empty, 8 CasMismatch, ...
pub type Status = u32;

pub const NOT_FOUND: Status = 1;
pub const BAD_ARGUMENT: Status = 2;
pub const CAS_MISMATCH: Status = 8;

pub const MAP_REQUEST_HEADERS: u32 = 0;
pub const MAP_RESPONSE_HEADERS: u32 = 2;
pub const MAP_HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
pub const BUFFER_HTTP_CALL_RESPONSE_BODY: u32 = 4;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
pub const BUFFER_GRPC_RECEIVE: u32 = 5;
const STREAM_HTTP_REQUEST: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
}

fn check(status: u32) -> Result<(), Status> {
    if status == 0 {
        Ok(())
    } else {
        Err(status)
    }
}

/// Takes ownership of a buffer the host allocated in this module's memory.
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host allocated `size` bytes through `proxy_on_memory_allocate` (proxy-wasm's
    // allocator: a boxed slice of exactly `size` bytes) and handed ownership to the module.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live &str for the duration of the call.
    let _ = unsafe { proxy_log(level, message.as_ptr(), message.len()) };
}

/// Host time since the Unix epoch.
pub fn current_time() -> Option<Duration> {
    let mut t = 0u64;
    // SAFETY: `t` is a live u64 the host writes.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut t) }).ok()?;
    Some(Duration::from_nanos(t))
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn clock_time_get(clock_id: u32, precision: u64, time: *mut u64) -> u16;
}

/// WASI's monotonic clock (id 1): what deadlines within one VM are measured on. Envoy answers it with
/// its dispatcher's monotonic time (proxy-wasm-cpp-host `src/exports.cc`,
/// `wasi_unstable_clock_time_get`: 1 → `getMonotonicTimeNanoseconds`), so a step of the wall clock
/// (NTP, an operator) neither holds a parked request longer nor wakes it early. Declared here rather
/// than read through `std::time::Instant`, which panics when the host refuses the call.
pub fn monotonic_time() -> Option<Duration> {
    let mut t = 0u64;
    // SAFETY: `t` is a live u64 the host writes.
    (unsafe { clock_time_get(1, 1, &mut t) } == 0).then(|| Duration::from_nanos(t))
}

pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

pub fn get_buffer(buffer_type: u32, start: usize, max_size: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to live locals.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) };
    match status {
        0 => Ok(take(data, size)),
        NOT_FOUND | 7 => Ok(Vec::new()),
        s => Err(s),
    }
}

/// Every pair of a header map, as bytes. A map the host cannot give, or that does not parse, is
/// empty.
pub fn get_header_pairs(map_type: u32) -> crate::wire::HeaderMap {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers to live locals.
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    if check(status).is_err() {
        return crate::wire::HeaderMap::default();
    }
    crate::wire::HeaderMap::decode(take(data, size)).unwrap_or_default()
}

pub fn get_header_value(map_type: u32, name: &str) -> Option<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: `name` is live for the call; out-pointers to live locals.
    let status = unsafe { proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size) };
    match status {
        0 => Some(take(data, size)),
        _ => None,
    }
}

pub fn replace_header(map_type: u32, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: both slices are live for the call.
    check(unsafe { proxy_replace_header_map_value(map_type, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn add_header(map_type: u32, name: &str, value: &[u8]) -> Result<(), Status> {
    // SAFETY: both slices are live for the call.
    check(unsafe { proxy_add_header_map_value(map_type, name.as_ptr(), name.len(), value.as_ptr(), value.len()) })
}

pub fn remove_header(map_type: u32, name: &str) -> Result<(), Status> {
    // SAFETY: `name` is live for the call.
    check(unsafe { proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()) })
}

pub fn get_property(path: &[&str]) -> Option<Vec<u8>> {
    let encoded = crate::wire::encode_path(path);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: `encoded` is live for the call; out-pointers to live locals.
    let status = unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match status {
        0 if !data.is_null() => Some(take(data, size)),
        _ => None,
    }
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), Status> {
    let encoded = crate::wire::encode_path(path);
    // SAFETY: both buffers are live for the call.
    check(unsafe { proxy_set_property(encoded.as_ptr(), encoded.len(), value.as_ptr(), value.len()) })
}

pub fn get_shared_data(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: `key` is live for the call; out-pointers to live locals.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match status {
        0 if !data.is_null() => (Some(take(data, size)), Some(cas)),
        0 => (None, Some(cas)),
        _ => (None, None),
    }
}

pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    // SAFETY: both slices are live for the call.
    let status =
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas.unwrap_or(0)) };
    check(status)
}

/// Lets the current (effective) request go on.
pub fn continue_request() -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

/// Answers the current (effective) request. `grpc_status` -1 for a plain HTTP reply.
pub fn send_local_response(
    status: u32,
    headers: &[(&[u8], &[u8])],
    body: &[u8],
    grpc_status: i32,
) -> Result<(), Status> {
    let map = crate::wire::encode_map(headers);
    // SAFETY: every buffer is live for the call.
    check(unsafe {
        proxy_send_local_response(status, null(), 0, body.as_ptr(), body.len(), map.as_ptr(), map.len(), grpc_status)
    })
}

pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: no pointers. Unknown ids (a request that went away) come back as BadArgument.
    check(unsafe { proxy_set_effective_context(context_id) })
}

pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: both slices are live for the call; out-pointers to live locals.
    let status = unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    };
    match status {
        0 => Ok(take(data, size)),
        s => Err(s),
    }
}

/// Defines a counter; its id.
/// Starts a unary gRPC call from `ctx` through the SDK, which registers the token so that the answer
/// comes back to `ctx`. `upstream` is a serialized `GrpcService` (see `reply::grpc_service`): bytes
/// that are not UTF-8 once a length takes two varint bytes.
///
/// The SDK's `dispatch_grpc_call` takes the upstream as `&str` and only hands its pointer and length to
/// the host (`hostcalls::dispatch_grpc_call` in proxy-wasm 0.2.5, the version the workspace pins): so
/// the bytes are passed as they are through a `&str` view that is never read as text. A `str` that is
/// not UTF-8 is a library-level invariant, not language UB (std's `str` docs): it is undefined only if
/// code relies on the contents being UTF-8, and the SDK's function does not. The view is built only for
/// that one call. (A callout the module dispatched through its own import would not be registered with
/// the SDK's dispatcher, which then drops the answer: that is why the SDK is used here.)
pub fn dispatch_grpc_call(
    ctx: &dyn proxy_wasm::traits::Context,
    upstream: &[u8],
    service: &str,
    method: &str,
    message: &[u8],
    timeout: Duration,
) -> Result<u32, Status> {
    let upstream_view: &str = match std::str::from_utf8(upstream) {
        Ok(text) => text,
        // SAFETY: see the function's doc: the SDK passes `as_ptr()`/`len()` to the host and nothing else.
        Err(_) => unsafe { std::str::from_utf8_unchecked(upstream) },
    };
    ctx.dispatch_grpc_call(upstream_view, service, method, vec![], Some(message), timeout).map_err(|s| s as u32)
}

pub fn define_counter(name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: `name` is live for the call; out-pointer to a live local.
    check(unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, offset) })
}
