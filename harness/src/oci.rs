//! Wasm modules as OCI images that istio-agent pulls: an artifact whose one layer has media type
//! `application/vnd.module.wasm.content.layer.v1+wasm` and whose config is
//! `application/vnd.module.wasm.config.v1+json` (the Wasm OCI artifact format istio-agent accepts).
//! `package` writes it as an OCI image layout directory; `push` sends it to a registry with the
//! maintained `oci-client` crate. Both produce the same manifest bytes (canonical JSON), so the same
//! digest, which `render` takes for the WasmPlugin's `sha256`.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
pub const WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
const CONFIG_BYTES: &[u8] = b"{}";

/// A packaged module.
pub struct Image {
    pub layer: ImageLayer,
    pub config: Config,
    pub manifest: OciImageManifest,
    /// The manifest as pushed (canonical JSON).
    pub manifest_bytes: Vec<u8>,
    /// `sha256:<hex>` of `manifest_bytes`.
    pub digest: String,
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The image of a module.
pub fn image(wasm: &[u8]) -> anyhow::Result<Image> {
    let layer = ImageLayer::new(wasm.to_vec(), WASM_LAYER.to_string(), None);
    let config = Config::new(CONFIG_BYTES.to_vec(), WASM_CONFIG.to_string(), None);
    let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    let mut manifest_bytes = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut manifest_bytes, olpc_cjson::CanonicalFormatter::new());
    manifest.serialize(&mut ser)?;
    let digest = sha256(&manifest_bytes);
    Ok(Image { layer, config, manifest, manifest_bytes, digest })
}

/// Writes the image as an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) tagged `tag`.
pub fn write_layout(img: &Image, dir: &Path, tag: &str) -> anyhow::Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    for bytes in [&img.layer.data[..], &img.config.data[..], &img.manifest_bytes[..]] {
        let d = sha256(bytes);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes)?;
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.digest,
            "size": img.manifest_bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag }
        }]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
    Ok(())
}

fn client(reference: &Reference) -> Client {
    // Plain HTTP only for registries on this machine (tests, a local registry); TLS everywhere else.
    let registry = reference.registry();
    let local = registry.starts_with("127.0.0.1") || registry.starts_with("localhost");
    let protocol = if local { ClientProtocol::Http } else { ClientProtocol::Https };
    Client::new(ClientConfig { protocol, ..Default::default() })
}

fn auth() -> RegistryAuth {
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Pushes the image; returns the manifest digest the registry stored.
pub fn push(img: &Image, target: &str) -> anyhow::Result<String> {
    let r = reference(target)?;
    let c = client(&r);
    runtime()?.block_on(async {
        c.push(&r, std::slice::from_ref(&img.layer), img.config.clone(), &auth(), Some(img.manifest.clone()))
            .await
            .map_err(|e| anyhow::anyhow!("push to {target} failed: {e}"))?;
        let (_, digest) = c
            .pull_image_manifest(&r, &auth())
            .await
            .map_err(|e| anyhow::anyhow!("reading back {target} failed: {e}"))?;
        Ok(digest)
    })
}

/// Pulls an image; returns its manifest digest and the module bytes.
pub fn pull(target: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let r = reference(target)?;
    let c = client(&r);
    runtime()?.block_on(async {
        let data =
            c.pull(&r, &auth(), vec![WASM_LAYER]).await.map_err(|e| anyhow::anyhow!("pull {target} failed: {e}"))?;
        let layer = data.layers.into_iter().next().ok_or_else(|| anyhow::anyhow!("{target} has no layer"))?;
        Ok((data.digest.unwrap_or_default(), layer.data.to_vec()))
    })
}
