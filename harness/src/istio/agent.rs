//! istio-agent's side: what it does to each ECDS extension config istiod sends before Envoy sees it
//! (istio/istio 1.29.6 `pkg/wasm/convert.go` `MaybeConvertWasmExtensionConfig` and `rewriteVMConfig`,
//! `pkg/wasm/cache.go` `LocalFileCache`, `pkg/wasm/imagefetcher.go` through [`crate::deploy::oci::pull_as`]):
//! a Wasm config with remote code gets its module fetched (by the agent's cache and pull-policy rules)
//! and its code rewritten to the local file, the `ISTIO_META_*` VM variables stripped; when anything
//! fails, the whole config is replaced by an RBAC filter of the same name — allow-all when the plugin
//! fails open, deny-all otherwise (FAIL_RELOAD included).

use crate::deploy::istio_api::{PULL_POLICY_ENV, PULL_SECRET_ENV, RBAC_TYPE_URL, RESOURCE_VERSION_ENV, WASM_TYPE_URL};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// `DefaultAllowStatPrefix` / `DefaultDenyStatPrefix` of convert.go.
pub const ALLOW_STAT_PREFIX: &str = "wasm-default-allow";
pub const DENY_STAT_PREFIX: &str = "wasm-default-deny";

/// The RBAC stand-in (`createHTTPDefaultFilter`): no `rules` allows everything; empty `rules` (an
/// ALLOW policy set with no policy) denies everything with 403 "RBAC: access denied".
pub fn rbac_stand_in(name: &str, fail_open: bool) -> Value {
    let rbac = if fail_open {
        json!({ "@type": RBAC_TYPE_URL, "rules_stat_prefix": ALLOW_STAT_PREFIX })
    } else {
        json!({ "@type": RBAC_TYPE_URL, "rules": {}, "rules_stat_prefix": DENY_STAT_PREFIX })
    };
    json!({ "name": name, "typed_config": rbac })
}

/// What the agent did with one extension config.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Not a Wasm config with remote code: passed through as it was.
    Unchanged,
    /// The module was fetched (or found in the cache) and the code points at it.
    Local { path: PathBuf, fetched: bool },
    /// The fetch failed: the RBAC stand-in went out instead; the agent's log line.
    Replaced { error: String, fail_open: bool },
}

/// The pull policies of `cache.go` (`PullPolicyValues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Unspecified,
    IfNotPresent,
    Always,
}

/// istio-agent's `LocalFileCache`: modules by (module name without tag, checksum) in a directory;
/// for URLs without a digest, the checksum last pulled per URL and the resource version per resource.
pub struct Cache {
    dir: PathBuf,
    /// `WASM_INSECURE_REGISTRIES`: hosts whose TLS is not verified (`*`: every host).
    pub insecure: BTreeSet<String>,
    modules: BTreeMap<(String, String), PathBuf>,
    checksums: BTreeMap<String, (String, BTreeMap<String, String>)>,
    /// Remote fetches made (manifest requests), for tests and `up --istio`'s report.
    pub fetches: u64,
}

struct GetOptions<'a> {
    checksum: String,
    resource_name: &'a str,
    resource_version: String,
    pull_policy: PullPolicy,
    pull_secret: Option<Vec<u8>>,
}

/// `moduleNameFromURL`: an OCI URL without its tag or digest.
fn module_name(url: &str) -> String {
    match url.strip_prefix("oci://") {
        Some(rest) => {
            let rest = rest.split('@').next().unwrap_or(rest);
            let (repo, last) = rest.rsplit_once('/').unwrap_or(("", rest));
            let last = last.split(':').next().unwrap_or(last);
            if repo.is_empty() {
                format!("oci://{last}")
            } else {
                format!("oci://{repo}/{last}")
            }
        }
        None => url.to_string(),
    }
}

/// `shouldIgnoreResourceVersion`.
fn ignore_resource_version(policy: PullPolicy, url: &str) -> bool {
    match policy {
        PullPolicy::Always => false,
        PullPolicy::IfNotPresent => true,
        PullPolicy::Unspecified => !url.starts_with("oci://") || !url.ends_with(":latest"),
    }
}

impl Cache {
    pub fn new(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, insecure: BTreeSet::new(), modules: BTreeMap::new(), checksums: BTreeMap::new(), fetches: 0 })
    }

    /// `allowInsecure`.
    fn allow_insecure(&self, host: &str) -> bool {
        self.insecure.contains("*") || self.insecure.contains(host)
    }

    /// `getEntry`: a cached module for the key, and the checksum the lookup settled on.
    fn entry(&mut self, url: &str, opts: &GetOptions, ignore_version: bool) -> (Option<PathBuf>, String) {
        let mut checksum = opts.checksum.clone();
        if checksum.is_empty() {
            if let Some((_, digest)) = url.strip_prefix("oci://").and_then(|u| u.split_once("@sha256:")) {
                checksum = digest.to_string();
            }
        }
        if checksum.is_empty() {
            if let Some((sum, versions)) = self.checksums.get_mut(url) {
                if ignore_version || versions.get(opts.resource_name) == Some(&opts.resource_version) {
                    checksum = sum.clone();
                }
                versions.insert(opts.resource_name.to_string(), opts.resource_version.clone());
            }
        }
        let hit = self.modules.get(&(module_name(url), checksum.clone())).cloned();
        if hit.is_some() {
            self.update_checksum(url, &checksum, opts);
        }
        (hit, checksum)
    }

    /// `updateChecksum`: tagged OCI URLs and http(s) URLs remember their last checksum.
    fn update_checksum(&mut self, url: &str, checksum: &str, opts: &GetOptions) {
        if !url.starts_with("oci://") || !url.contains('@') {
            let e = self.checksums.entry(url.to_string()).or_insert_with(|| (String::new(), BTreeMap::new()));
            e.0 = checksum.to_string();
            e.1.insert(opts.resource_name.to_string(), opts.resource_version.clone());
        }
    }

    /// `getOrFetch`.
    fn get(&mut self, url: &str, opts: &GetOptions) -> Result<(PathBuf, bool), String> {
        let (hit, checksum) = self.entry(url, opts, ignore_resource_version(opts.pull_policy, url));
        if let Some(path) = hit {
            return Ok((path, false));
        }
        self.fetches += 1;
        let host = url.split("://").nth(1).and_then(|rest| rest.split(['/', '@']).next()).unwrap_or_default();
        let insecure = self.allow_insecure(host);
        let (digest, wasm) = if url.starts_with("oci://") {
            let reference =
                crate::deploy::oci::reference(url).map_err(|e| format!("could not fetch Wasm OCI image: {e}"))?;
            let auth = match &opts.pull_secret {
                Some(secret) => crate::deploy::oci::docker_config_auth(secret, reference.registry())?,
                None => crate::deploy::oci::RegistryAuth::Anonymous,
            };
            let expected = (!checksum.is_empty()).then_some(checksum.as_str());
            crate::deploy::oci::pull_with(url, expected, auth, insecure).map_err(|e| e.to_string())?
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let body = http_fetch(url, insecure, &HttpRetry::default())?;
            // The checksum of what was unboxed (cache.go hashes the fetcher's result).
            let digest = crate::deploy::oci::sha256(&body).trim_start_matches("sha256:").to_string();
            if !checksum.is_empty() && digest != checksum {
                return Err(format!(
                    "module downloaded from {url} has checksum {digest}, which does not match: {checksum}"
                ));
            }
            if body.len() < 8 || !body.starts_with(b"\0asm") {
                return Err(format!("fetched Wasm binary from {url} is invalid"));
            }
            (digest, body)
        } else {
            let scheme = url.split("://").next().unwrap_or(url);
            return Err(format!("unsupported Wasm module downloading URL scheme: {scheme}"));
        };
        if checksum.is_empty() {
            let probe = GetOptions {
                checksum: digest.clone(),
                resource_name: opts.resource_name,
                resource_version: opts.resource_version.clone(),
                pull_policy: opts.pull_policy,
                pull_secret: None,
            };
            if let (Some(path), _) = self.entry(url, &probe, true) {
                return Ok((path, true));
            }
        }
        // addEntry: <dir>/<sha256(module name)>/<checksum>.wasm
        let name = module_name(url);
        let dir = self.dir.join(crate::deploy::oci::sha256(name.as_bytes()).trim_start_matches("sha256:"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{digest}.wasm"));
        std::fs::write(&path, &wasm).map_err(|e| e.to_string())?;
        self.update_checksum(url, &digest, opts);
        self.modules.insert((name, digest), path.clone());
        Ok((path, true))
    }
}

/// The http(s) fetcher's retry policy (pkg/wasm/httpfetcher.go, options.go): at most 5 attempts
/// (`DefaultHTTPRequestMaxRetries`), the first wait 500 ms and each next one 1.5 times longer
/// (pkg/backoff's exponential default, without its jitter), 15 s for the whole fetch
/// (`DefaultHTTPRequestTimeout`).
pub struct HttpRetry {
    pub attempts: u32,
    pub first_wait: std::time::Duration,
    pub timeout: std::time::Duration,
}

impl Default for HttpRetry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_wait: std::time::Duration::from_millis(500),
            timeout: std::time::Duration::from_secs(15),
        }
    }
}

/// `retryable`: 5xx but 501, 505 and 511.
fn retryable(status: u16) -> bool {
    status >= 500 && ![501, 505, 511].contains(&status)
}

/// `HTTPFetcher.Fetch`: GET `url`, TLS verified unless `insecure`; connection errors and retryable
/// statuses are tried again; a 200's body (at most 256 MiB) is unboxed; any other status ends it.
pub fn http_fetch(url: &str, insecure: bool, retry: &HttpRetry) -> Result<Vec<u8>, String> {
    let rt = crate::deploy::oci::runtime().map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(insecure)
        .timeout(retry.timeout)
        .build()
        .map_err(|e| format!("wasm module download request failed: {e}"))?;
    let deadline = std::time::Instant::now() + retry.timeout;
    rt.block_on(async {
        let mut wait = retry.first_wait;
        let mut last_error = String::new();
        let mut attempts = 0;
        while attempts < retry.attempts {
            attempts += 1;
            match client.get(url).send().await {
                Err(e) => last_error = crate::deploy::oci::error_chain(&e),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 200 {
                        let body = resp.bytes().await.map_err(|e| e.to_string())?;
                        if body.len() > 256 << 20 {
                            return Err("wasm module download failed: over 256 MiB".to_string());
                        }
                        return Ok(unbox_if_possible(body.to_vec()));
                    }
                    last_error = format!("wasm module download request failed: status code {status}");
                    if !retryable(status) {
                        break;
                    }
                }
            }
            if std::time::Instant::now() + wait > deadline {
                break;
            }
            tokio::time::sleep(wait).await;
            wait = wait.mul_f64(1.5);
        }
        Err(format!("wasm module download failed after {attempts} attempts, last error: {last_error}"))
    })
}

/// `unboxIfPossible`: gunzip, or take a POSIX tar's first file, until the bytes are a Wasm binary;
/// anything else (or a step that fails) gives back the original bytes.
pub fn unbox_if_possible(origin: Vec<u8>) -> Vec<u8> {
    use std::io::Read as _;
    let mut b = origin.clone();
    loop {
        if b.len() >= 8 && b.starts_with(b"\0asm") {
            return b;
        } else if b.len() > 2 && b.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            let limit = flate2::read::GzDecoder::new(b.as_slice()).take(256 << 20).read_to_end(&mut out);
            if limit.is_err() {
                return origin;
            }
            b = out;
        } else if b.len() > 262 && &b[257..262] == b"ustar" {
            let mut archive = tar::Archive::new(b.as_slice());
            let first = archive.entries().ok().and_then(|mut e| e.next()).and_then(Result::ok).and_then(|mut entry| {
                let mut out = Vec::new();
                entry.read_to_end(&mut out).ok().map(|_| out)
            });
            match first {
                Some(out) => b = out,
                None => return origin,
            }
        } else {
            return origin;
        }
    }
}

/// `MaybeConvertWasmExtensionConfig` for one resource: returns the resource Envoy gets and what
/// happened. `ISTIO_META_WASM_IMAGE_PULL_SECRET` must already hold the Secret's content (istiod's
/// `updatePluginConfig`, "" when there is no such Secret), as the agent receives it.
pub fn convert(resource: &Value, cache: &mut Cache) -> (Value, Outcome) {
    let is_wasm = resource["typed_config"]["@type"] == WASM_TYPE_URL;
    let remote = &resource["typed_config"]["config"]["vm_config"]["code"]["remote"];
    if !is_wasm || remote.is_null() {
        return (resource.clone(), Outcome::Unchanged);
    }
    let name = resource["name"].as_str().unwrap_or_default().to_string();
    let config = &resource["typed_config"]["config"];
    let fail_open = config["failure_policy"] == "FAIL_OPEN";
    match rewrite_vm_config(resource, cache) {
        Ok((converted, path, fetched)) => (converted, Outcome::Local { path, fetched }),
        Err(error) => {
            let rbac = if fail_open { "allow" } else { "deny" };
            let error = format!("error in converting the wasm config to local: {error}. applying {rbac} RBAC filter");
            (rbac_stand_in(&name, fail_open), Outcome::Replaced { error, fail_open })
        }
    }
}

/// `rewriteVMConfig`.
fn rewrite_vm_config(resource: &Value, cache: &mut Cache) -> Result<(Value, PathBuf, bool), String> {
    let mut out = resource.clone();
    let resource_name = resource["name"].as_str().unwrap_or_default();
    let config_name = resource["typed_config"]["config"]["name"].as_str().unwrap_or_default().to_string();
    let vm = &mut out["typed_config"]["config"]["vm_config"];
    let mut pull_secret = None;
    let mut pull_policy = PullPolicy::Unspecified;
    let mut resource_version = String::new();
    if let Some(kv) = vm["environment_variables"]["key_values"].as_object_mut() {
        if let Some(sec) = kv.get(PULL_SECRET_ENV) {
            let sec = sec.as_str().unwrap_or_default();
            if sec.is_empty() {
                return Err(format!("cannot fetch Wasm module {config_name}: missing image pulling secret"));
            }
            pull_secret = Some(sec.as_bytes().to_vec());
        }
        pull_policy = match kv.get(PULL_POLICY_ENV).and_then(Value::as_str) {
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            Some("Always") => PullPolicy::Always,
            _ => PullPolicy::Unspecified,
        };
        resource_version = kv.get(RESOURCE_VERSION_ENV).and_then(Value::as_str).unwrap_or_default().to_string();
        let strip: BTreeSet<String> = kv.keys().filter(|k| k.starts_with("ISTIO_META_")).cloned().collect();
        for k in strip {
            kv.remove(&k);
        }
        let empty = kv.is_empty();
        let host_keys = vm["environment_variables"]["host_env_keys"].as_array().is_some_and(|h| !h.is_empty());
        if empty && !host_keys {
            if let Some(o) = vm.as_object_mut() {
                o.remove("environment_variables");
            }
        } else if empty {
            if let Some(o) = vm["environment_variables"].as_object_mut() {
                o.remove("key_values");
            }
        }
    }
    let remote = &vm["code"]["remote"];
    let uri = remote["http_uri"]["uri"].as_str().ok_or_else(|| {
        format!("wasm remote fetch {remote} does not have httpUri specified for config {config_name}")
    })?;
    let sha = remote["sha256"].as_str().unwrap_or_default();
    let sha = if sha == "nil" { "" } else { sha };
    let opts = GetOptions { checksum: sha.to_string(), resource_name, resource_version, pull_policy, pull_secret };
    let uri = uri.to_string();
    let (path, fetched) = cache.get(&uri, &opts).map_err(|e| format!("cannot fetch Wasm module {uri}: {e}"))?;
    vm["code"] = json!({ "local": { "filename": path.display().to_string() } });
    Ok((out, path, fetched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_drop_tag_and_digest() {
        assert_eq!(module_name("oci://r:5000/a/b:1.0"), "oci://r:5000/a/b");
        assert_eq!(module_name("oci://r/a@sha256:00"), "oci://r/a");
        assert_eq!(module_name("http://x/y.wasm"), "http://x/y.wasm");
    }

    #[test]
    fn a_missing_pull_secret_gives_the_deny_stand_in() {
        let dir = std::env::temp_dir().join(format!("meshplug-agent-unit-{}", std::process::id()));
        let mut cache = Cache::new(dir.clone()).unwrap();
        let resource = json!({ "name": "n", "typed_config": { "@type": WASM_TYPE_URL, "config": {
            "name": "ns.p", "failure_policy": "FAIL_RELOAD",
            "vm_config": { "code": { "remote": { "http_uri": { "uri": "oci://127.0.0.1:1/x:1" } } },
                           "environment_variables": { "key_values": { PULL_SECRET_ENV: "" } } } } } });
        let (out, outcome) = convert(&resource, &mut cache);
        assert_eq!(out, rbac_stand_in("n", false));
        let Outcome::Replaced { error, fail_open: false } = outcome else { panic!("{outcome:?}") };
        assert!(error.contains("cannot fetch Wasm module ns.p: missing image pulling secret"), "{error}");
        assert!(error.ends_with("applying deny RBAC filter"), "{error}");
        assert_eq!(cache.fetches, 0);
        let _ = std::fs::remove_dir_all(dir);
    }
}
