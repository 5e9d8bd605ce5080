//! Wasm modules as OCI images that istio-agent pulls, and a puller that applies istio-agent's rules.
//!
//! Two image shapes, both accepted by istio-agent (Istio 1.28/1.29 `pkg/wasm/imagefetcher.go`, after
//! the Wasm image spec at github.com/solo-io/wasm `spec/`):
//! - [`Format::Compat`] (the default): an OCI image with ONE layer of media type
//!   `application/vnd.oci.image.layer.v1.tar+gzip` holding `plugin.wasm`, an OCI image config, and the
//!   annotation `module.wasm.image/variant: compat`. Any registry and any OCI tool handles it.
//! - [`Format::Artifact`]: the spec's "oci" variant, EXACTLY two layers: the runtime config
//!   (`application/vnd.module.wasm.config.v1+json`) and the module
//!   (`application/vnd.module.wasm.content.layer.v1+wasm`).
//!
//! An image is deterministic: the tar entry has fixed header fields (mode 0644, uid/gid 0, mtime 0, no
//! user names), the gzip stream has no timestamp, name or OS byte of the machine, and the manifest is
//! canonical JSON — so one module always gives one digest, on any machine. That digest is what a
//! WasmPlugin pins as `sha256`, so `render` can compute it without a registry.
//!
//! [`pull`] is what the tests use to read an image back, and it does NOT trust our own packaging: it
//! applies istio-agent's acceptance rules as read at their source (`pkg/wasm/imagefetcher.go`
//! `PrepareFetch`, `extractDockerImage`, `extractOCIStandardImage`, `extractOCIArtifactImage`,
//! `extractWasmPluginBinary`; `pkg/wasm/cache.go` `getOrFetch` for the checksum and the Wasm magic
//! bytes), with the agent's reasons when it refuses.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
pub use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
/// The file istio-agent looks for in a compat image's layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";

/// Which image shape to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One tar+gzip layer holding `plugin.wasm` (OCI image, "compat" variant).
    #[default]
    Compat,
    /// Two layers: runtime config and the raw module (Wasm artifact, "oci" variant).
    Artifact,
}

/// One blob of an image (config or layer).
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    pub annotations: Vec<(String, String)>,
}

impl Blob {
    fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self { media_type: media_type.into(), data, annotations: vec![] }
    }

    fn descriptor(&self) -> serde_json::Value {
        let mut d =
            serde_json::json!({"mediaType": self.media_type, "digest": sha256(&self.data), "size": self.data.len()});
        if !self.annotations.is_empty() {
            d["annotations"] =
                self.annotations.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect();
        }
        d
    }
}

/// A packaged module: its blobs and manifest.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_media_type: String,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The manifest as pushed (canonical JSON).
    pub manifest_bytes: Vec<u8>,
    /// `sha256:<hex>` of `manifest_bytes`: what a WasmPlugin pins as `sha256` (without the prefix).
    pub digest: String,
}

impl Image {
    /// An image from its parts (any shape: tests build the shapes istio-agent refuses with this).
    pub fn assemble(
        manifest_media_type: &str,
        config: Blob,
        layers: Vec<Blob>,
        annotations: &[(&str, &str)],
    ) -> anyhow::Result<Image> {
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_media_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        if !annotations.is_empty() {
            manifest["annotations"] =
                annotations.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v))).collect();
        }
        let manifest_bytes = canonical_json(&manifest)?;
        let digest = sha256(&manifest_bytes);
        Ok(Image { manifest_media_type: manifest_media_type.into(), config, layers, manifest_bytes, digest })
    }

    /// The digest's hex part: the WasmPlugin `sha256` field.
    pub fn sha256_hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

fn canonical_json(v: &serde_json::Value) -> anyhow::Result<Vec<u8>> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    v.serialize(&mut ser)?;
    Ok(out)
}

pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// `plugin.wasm` in a tar archive with fixed header fields, gzip-compressed without a timestamp.
pub fn plugin_tar_gz(wasm: &[u8]) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path(PLUGIN_FILE)?;
    header.set_size(wasm.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, wasm)?;
    let tar = tar.into_inner()?;
    // GzBuilder writes mtime 0, no file name and OS byte 255 (unknown) unless told otherwise.
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar)?;
    Ok((tar.clone(), gz.finish()?))
}

/// The image of a module in the given shape.
pub fn image(wasm: &[u8], format: Format) -> anyhow::Result<Image> {
    match format {
        Format::Compat => {
            let (tar, layer) = plugin_tar_gz(wasm)?;
            let config = serde_json::json!({
                "architecture": "wasm",
                "os": "wasip1",
                "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
                "config": {},
            });
            Image::assemble(
                OCI_MANIFEST,
                Blob::new(OCI_CONFIG, canonical_json(&config)?),
                vec![Blob::new(OCI_LAYER_TAR_GZIP, layer)],
                &[("module.wasm.image/variant", "compat")],
            )
        }
        Format::Artifact => {
            let runtime = canonical_json(&serde_json::json!({"type": "envoy_proxy", "abiVersions": ["v0.2.1"]}))?;
            let mut config_layer = Blob::new(WASM_CONFIG, runtime.clone());
            config_layer.annotations.push(("org.opencontainers.image.title".into(), "runtime-config.json".into()));
            let mut module = Blob::new(WASM_LAYER, wasm.to_vec());
            module.annotations.push(("org.opencontainers.image.title".into(), PLUGIN_FILE.into()));
            Image::assemble(OCI_MANIFEST, Blob::new(WASM_CONFIG, runtime), vec![config_layer, module], &[])
        }
    }
}

/// Writes the image as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) tagged `tag`.
pub fn write_layout(img: &Image, dir: &Path, tag: &str) -> anyhow::Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let all = std::iter::once(&img.config.data).chain(img.layers.iter().map(|l| &l.data));
    for bytes in all.map(Vec::as_slice).chain([img.manifest_bytes.as_slice()]) {
        std::fs::write(blobs.join(sha256(bytes).trim_start_matches("sha256:")), bytes)?;
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": img.manifest_media_type,
            "digest": img.digest,
            "size": img.manifest_bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag }
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
    Ok(())
}

/// The scheme go-containerregistry picks for a registry (`name.Registry.Scheme`, which istio-agent's
/// image fetcher uses): plain HTTP for `localhost`, loopback and RFC 1918 private addresses, HTTPS for
/// everything else.
pub fn default_protocol(registry: &str) -> ClientProtocol {
    let host = registry.rsplit_once(':').map_or(registry, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') {
            h
        } else {
            registry
        }
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let plain = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host == "localhost",
    };
    if plain {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    }
}

fn client_with(protocol: ClientProtocol, insecure: bool) -> Client {
    Client::new(ClientConfig { protocol, accept_invalid_certificates: insecure, ..Default::default() })
}

fn client(reference: &Reference) -> Client {
    client_with(default_protocol(reference.registry()), false)
}

/// An error with its causes, `: `-separated (the registry client's message leaves out the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Whether a failed HTTPS request was answered in plain HTTP: what go-containerregistry reports as
/// "server gave HTTP response to HTTPS client", on which istio-agent retries the image over plain HTTP
/// (`PrepareFetch`). rustls sees the HTTP status line as a record of an invalid content type.
pub fn answered_in_plain_http(error: &str) -> bool {
    error.contains("InvalidContentType") || error.contains("server gave HTTP response")
}

pub fn auth() -> RegistryAuth {
    match (std::env::var("MESHPLUG_REGISTRY_USER"), std::env::var("MESHPLUG_REGISTRY_PASSWORD")) {
        (Ok(u), Ok(p)) => RegistryAuth::Basic(u, p),
        _ => RegistryAuth::Anonymous,
    }
}

/// Parses `oci://host/repo:tag` (the `oci://` prefix is optional).
pub fn reference(target: &str) -> anyhow::Result<Reference> {
    let r = target.strip_prefix("oci://").unwrap_or(target);
    r.parse::<Reference>().map_err(|e| anyhow::anyhow!("{target:?} is not an image reference: {e}"))
}

/// A single-threaded runtime for one blocking call into an async client.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Pushes the image's blobs and then its manifest bytes exactly as built; returns the digest the
/// registry answers for the tag (it must equal [`Image::digest`]).
pub fn push(img: &Image, target: &str) -> anyhow::Result<String> {
    let blobs: Vec<&Blob> = std::iter::once(&img.config).chain(&img.layers).collect();
    push_blobs_and_manifest(target, &blobs, &img.manifest_bytes, &img.manifest_media_type)
}

/// A built module (a filter, or `meshplug` for the bundle) as an image: its file and the image.
pub fn module_image(module: &str, format: Format) -> anyhow::Result<(PathBuf, Image)> {
    let path = crate::deploy::filters::module_path(module)?;
    let wasm = std::fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok((path, image(&wasm, format)?))
}

/// `meshplug package`: writes a built module's image as an OCI layout directory (default:
/// `<target>/oci/<module>`) tagged `tag`; returns the module's file, the image digest and the directory.
pub fn package(
    module: &str,
    format: Format,
    tag: &str,
    out: Option<&Path>,
) -> anyhow::Result<(PathBuf, String, PathBuf)> {
    let (path, img) = module_image(module, format)?;
    let dir = out.map_or_else(|| crate::deploy::filters::target_dir().join("oci").join(module), Path::to_path_buf);
    write_layout(&img, &dir, tag)?;
    Ok((path, img.digest, dir))
}

/// `meshplug push`: pushes a built module's image to `target` and checks that the registry stored the
/// manifest that was packaged (the digest `render` pins); returns that digest.
pub fn push_module(module: &str, target: &str, format: Format) -> anyhow::Result<String> {
    let (_, img) = module_image(module, format)?;
    let digest = push(&img, target)?;
    anyhow::ensure!(
        digest == img.digest,
        "the registry stored manifest {digest}, not the one packaged ({})",
        img.digest
    );
    Ok(digest)
}

/// Pushes manifest bytes as they are (e.g. an image index, whose images are pushed already) under
/// `target`'s tag or digest; returns the digest the registry answers for it.
pub fn push_manifest_raw(target: &str, bytes: &[u8], media_type: &str) -> anyhow::Result<String> {
    push_blobs_and_manifest(target, &[], bytes, media_type)
}

fn push_blobs_and_manifest(target: &str, blobs: &[&Blob], manifest: &[u8], media_type: &str) -> anyhow::Result<String> {
    let r = reference(target)?;
    let c = client(&r);
    let a = auth();
    runtime()?.block_on(async {
        c.auth(&r, &a, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| anyhow::anyhow!("authenticating to {target} failed: {e}"))?;
        for blob in blobs {
            c.push_blob(&r, blob.data.clone(), &sha256(&blob.data))
                .await
                .map_err(|e| anyhow::anyhow!("pushing a blob to {target} failed: {e}"))?;
        }
        c.push_manifest_raw(&r, manifest.to_vec(), media_type.parse()?)
            .await
            .map_err(|e| anyhow::anyhow!("pushing the manifest to {target} failed: {e}"))?;
        let (bytes, _) = c
            .pull_manifest_raw(&r, &a, &[media_type])
            .await
            .map_err(|e| anyhow::anyhow!("reading back {target} failed: {e}"))?;
        Ok(sha256(&bytes))
    })
}

/// Why istio-agent would refuse an image (its words, from the source files named in the module doc).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("could not fetch Wasm OCI image: could not fetch manifest: {0}")]
    Manifest(String),
    #[error("module downloaded from {url} has checksum {actual}, which does not match: {expected}")]
    Checksum { url: String, actual: String, expected: String },
    #[error("could not fetch Wasm binary: {0}")]
    Binary(String),
    #[error("fetched Wasm binary from {0} is invalid")]
    NotWasm(String),
}

/// What istio-agent would load from `url` (`oci://…`), or why it would refuse. `expected_sha256` is
/// a WasmPlugin's `sha256` (hex, the manifest digest); `None` accepts any digest, as the agent does.
/// Returns the manifest digest (hex) and the module bytes.
pub fn pull(url: &str, expected_sha256: Option<&str>) -> Result<(String, Vec<u8>), Refusal> {
    pull_as(url, expected_sha256, auth())
}

/// Credentials for `host` from a `kubernetes.io/dockerconfigjson` Secret's `.dockerconfigjson`
/// (`{"auths": {"<key>": {"auth": base64("user:password")}}}` or `username`/`password`), as
/// istio-agent's keychain reads the pull secret istiod hands it (`wasmKeyChain.Resolve` →
/// docker/cli `configfile.LoadFromReader` and the file store's `Get`): the key equal to the host first,
/// else the first key whose hostname (`ConvertToHostname`: without `http://`/`https://` and anything
/// from the first `/`) is the host, so `https://registry.example.com/v1/` serves
/// `registry.example.com`; Docker Hub's key is `https://index.docker.io/v1/`; a non-empty `auth`
/// decides over `username`/`password` (`LoadFromReader` decodes it into them). Anonymous when no key
/// matches.
pub fn docker_config_auth(docker_config: &[u8], host: &str) -> Result<RegistryAuth, String> {
    use base64::Engine as _;
    let v: serde_json::Value =
        serde_json::from_slice(docker_config).map_err(|e| format!("the pull secret is not a docker config: {e}"))?;
    let hostname = |key: &str| -> String {
        let k = key.strip_prefix("http://").or_else(|| key.strip_prefix("https://")).unwrap_or(key);
        k.split('/').next().unwrap_or(k).to_string()
    };
    let host = if host == "docker.io" { "index.docker.io" } else { host };
    let Some(auths) = v["auths"].as_object() else { return Ok(RegistryAuth::Anonymous) };
    let mut keys: Vec<&String> = auths.keys().collect();
    keys.sort();
    let Some(e) = auths.get(host).or_else(|| keys.into_iter().find(|k| hostname(k) == host).and_then(|k| auths.get(k)))
    else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let Some(auth) = e["auth"].as_str().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|e| format!("the pull secret's auth is not base64: {e}"))?;
        let text = String::from_utf8(decoded).map_err(|_| "the pull secret's auth is not UTF-8".to_string())?;
        let (u, p) = text.split_once(':').ok_or("the pull secret's auth is not user:password")?;
        return Ok(RegistryAuth::Basic(u.into(), p.trim_matches('\0').into()));
    }
    match (e["username"].as_str(), e["password"].as_str()) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(RegistryAuth::Basic(u.into(), p.into())),
        _ => Ok(RegistryAuth::Anonymous),
    }
}

/// [`pull`] with the given credentials.
pub fn pull_as(url: &str, expected_sha256: Option<&str>, a: RegistryAuth) -> Result<(String, Vec<u8>), Refusal> {
    pull_with(url, expected_sha256, a, false)
}

/// An image index (OCI) or manifest list (Docker).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What istio-agent does for one `oci://` URL (`PrepareFetch`): the registry's scheme as
/// go-containerregistry picks it, HTTPS falling back to plain HTTP when the registry answers in plain
/// HTTP; TLS unverified for a registry listed insecure (`WASM_INSECURE_REGISTRIES`); an image index
/// resolved to its `linux/amd64` image (`remote.Descriptor.Image`), whose manifest digest is then the
/// one checked against `expected_sha256`.
pub fn pull_with(
    url: &str,
    expected_sha256: Option<&str>,
    a: RegistryAuth,
    insecure: bool,
) -> Result<(String, Vec<u8>), Refusal> {
    let r = reference(url).map_err(|e| Refusal::Manifest(e.to_string()))?;
    pull_starting_with(url, expected_sha256, a, insecure, default_protocol(r.registry()))
}

/// [`pull_with`], starting with `protocol` instead of the registry's default scheme (so a test can
/// show the plain-HTTP fallback against a registry on this machine).
pub fn pull_starting_with(
    url: &str,
    expected_sha256: Option<&str>,
    a: RegistryAuth,
    insecure: bool,
    protocol: ClientProtocol,
) -> Result<(String, Vec<u8>), Refusal> {
    let r = reference(url).map_err(|e| Refusal::Manifest(e.to_string()))?;
    let https = matches!(protocol, ClientProtocol::Https);
    match pull_from(&client_with(protocol, insecure), &r, url, expected_sha256, &a) {
        Err(Refusal::Manifest(e)) if https && answered_in_plain_http(&e) => {
            pull_from(&client_with(ClientProtocol::Http, insecure), &r, url, expected_sha256, &a)
        }
        other => other,
    }
}

fn pull_from(
    c: &Client,
    r: &Reference,
    url: &str,
    expected_sha256: Option<&str>,
    a: &RegistryAuth,
) -> Result<(String, Vec<u8>), Refusal> {
    let rt = runtime().map_err(|e| Refusal::Manifest(e.to_string()))?;
    rt.block_on(async {
        let bytes = platform_manifest(c, r, a).await?;
        // go-containerregistry's img.Digest(): the sha256 of the (platform's) manifest as served.
        let actual = sha256(&bytes).trim_start_matches("sha256:").to_string();
        if let Some(expected) = expected_sha256 {
            if expected != actual {
                return Err(Refusal::Checksum { url: url.into(), actual, expected: expected.into() });
            }
        }
        let wasm = wasm_of(c, r, &bytes).await?;
        // cache.go isValidWasmBinary: at least 8 bytes, starting with the magic number.
        if wasm.len() < 8 || !wasm.starts_with(b"\0asm") {
            return Err(Refusal::NotWasm(url.into()));
        }
        Ok((actual, wasm))
    })
}

/// The image manifest's bytes as served: the tag's manifest, or for an image index its `linux/amd64`
/// child's.
async fn platform_manifest(c: &Client, r: &Reference, a: &RegistryAuth) -> Result<Vec<u8>, Refusal> {
    let accept = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST];
    let (mut bytes, _) = c.pull_manifest_raw(r, a, &accept).await.map_err(|e| Refusal::Manifest(error_chain(&e)))?;
    let served: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| Refusal::Manifest(format!("not a manifest: {e}")))?;
    if served["mediaType"] == OCI_INDEX
        || served["mediaType"] == DOCKER_MANIFEST_LIST
        || served.get("manifests").is_some()
    {
        let child = linux_amd64(&served).map_err(|e| Refusal::Binary(format!("could not fetch image: {e}")))?;
        let by_digest: Reference = format!("{}/{}@{child}", r.registry(), r.repository())
            .parse()
            .map_err(|e| Refusal::Manifest(format!("{e}")))?;
        bytes = c
            .pull_manifest_raw(&by_digest, a, &[OCI_MANIFEST, DOCKER_MANIFEST])
            .await
            .map_err(|e| Refusal::Manifest(e.to_string()))?
            .0;
    }
    Ok(bytes.to_vec())
}

/// The Wasm module in the image whose manifest is `bytes`, found by istio-agent's rules
/// (imagefetcher.go): the Docker image's last tar+gzip layer, else the OCI compat variant's, else the
/// artifact variant's Wasm layer, each refusal worded as the agent words it.
async fn wasm_of(c: &Client, r: &Reference, bytes: &[u8]) -> Result<Vec<u8>, Refusal> {
    let manifest: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Refusal::Manifest(format!("not a manifest: {e}")))?;
    let layers: Vec<OciDescriptor> = serde_json::from_value(manifest["layers"].clone())
        .map_err(|e| Refusal::Binary(format!("could not fetch layers: {e}")))?;
    let fetch = |d: OciDescriptor| {
        let (c, r) = (c, r);
        async move {
            let mut out = Vec::new();
            c.pull_blob(r, &d, &mut out)
                .await
                .map_err(|e| Refusal::Binary(format!("could not get layer content: {e}")))?;
            Ok::<Vec<u8>, Refusal>(out)
        }
    };
    let wasm = if manifest["mediaType"] == DOCKER_MANIFEST {
        let last = last_layer(&layers, DOCKER_LAYER_TAR_GZIP).map_err(|e| {
            Refusal::Binary(format!("could not extract Wasm file from the image as Docker container {e}"))
        })?;
        plugin_from_tar_gz(&fetch(last).await?).map_err(|e| {
            Refusal::Binary(format!(
                "could not extract Wasm file from the image as Docker container could not extract wasm binary: {e}"
            ))
        })?
    } else {
        // The compat variant first; then the artifact ("oci") variant; both reasons when neither.
        let compat = match last_layer(&layers, OCI_LAYER_TAR_GZIP) {
            Ok(last) => {
                plugin_from_tar_gz(&fetch(last).await?).map_err(|e| format!("could not extract wasm binary: {e}"))
            }
            Err(e) => Err(e),
        };
        match compat {
            Ok(wasm) => wasm,
            Err(compat_error) => match artifact_layer(&layers) {
                Ok(layer) => fetch(layer).await?,
                Err(oci_error) => {
                    return Err(Refusal::Binary(format!(
                        "the given image is in invalid format as an OCI image: 2 errors occurred:\n\
                         \t* could not parse as compat variant: {compat_error}\n\
                         \t* could not parse as oci variant: {oci_error}"
                    )))
                }
            },
        }
    };
    Ok(wasm)
}

/// The digest of an index's `linux/amd64` manifest: go-containerregistry's default platform, which a
/// child satisfies when its os and architecture are those (variant and OS version unset or anything).
fn linux_amd64(index: &serde_json::Value) -> Result<String, String> {
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
        .and_then(|m| m["digest"].as_str())
        .map(str::to_string)
        .ok_or_else(|| "no child with platform linux/amd64 in index".to_string())
}

/// The last layer, which must have `media_type` (extractDockerImage / extractOCIStandardImage).
fn last_layer(layers: &[OciDescriptor], media_type: &str) -> Result<OciDescriptor, String> {
    let last = layers.last().ok_or("number of layers must be greater than zero")?;
    if last.media_type != media_type {
        return Err(format!("invalid media type {} (expect {media_type})", last.media_type));
    }
    Ok(last.clone())
}

/// The module layer of a two-layer artifact (extractOCIArtifactImage).
fn artifact_layer(layers: &[OciDescriptor]) -> Result<OciDescriptor, String> {
    if layers.len() != 2 {
        return Err(format!("number of layers must be 2 but got {}", layers.len()));
    }
    layers
        .iter()
        .find(|l| l.media_type == WASM_LAYER)
        .cloned()
        .ok_or_else(|| format!("could not find the layer of type {WASM_LAYER}"))
}

/// The first entry whose base name is `plugin.wasm` (extractWasmPluginBinary).
fn plugin_from_tar_gz(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut archive = tar::Archive::new(gz);
    let entries = archive.entries().map_err(|e| format!("failed to parse layer as tar.gz: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path.file_name().is_some_and(|n| n == PLUGIN_FILE) {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).map_err(|e| format!("failed to read {PLUGIN_FILE}: {e}"))?;
            return Ok(out);
        }
    }
    Err(format!("{PLUGIN_FILE} not found in the archive"))
}
