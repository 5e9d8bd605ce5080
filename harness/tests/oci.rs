//! `package` + `push` against a real OCI registry (Debian's docker-registry, started here on
//! 127.0.0.1 and stopped at the end, even on failure), read back with `oci::pull`, which applies
//! istio-agent's acceptance rules as written in istio/istio `pkg/wasm/imagefetcher.go` (PrepareFetch
//! and the three extract functions) and `pkg/wasm/cache.go` (getOrFetch: checksum, Wasm magic bytes) —
//! not our own packaging's idea of an image. The images istio-agent refuses are built here too (the
//! one-layer artifact meshplug used to push), and must be refused with the agent's reasons.

use meshplug_harness::deploy::oci::{
    image, plugin_tar_gz, pull, push, write_layout, Blob, Format, Image, Refusal, DOCKER_LAYER_TAR_GZIP,
    DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER_TAR_GZIP, OCI_MANIFEST, WASM_CONFIG, WASM_LAYER,
};
use meshplug_harness::lab::registry::Registry;

fn registry() -> Registry {
    Registry::start().unwrap()
}

fn fault_wasm() -> Vec<u8> {
    std::fs::read(meshplug_harness::deploy::filters::module_path("fault").unwrap()).unwrap()
}

fn blob(media_type: &str, data: &[u8]) -> Blob {
    Blob { media_type: media_type.into(), data: data.to_vec(), annotations: vec![] }
}

#[test]
fn images_are_deterministic() {
    let wasm = fault_wasm();
    for format in [Format::Compat, Format::Artifact] {
        let (a, b) = (image(&wasm, format).unwrap(), image(&wasm, format).unwrap());
        assert_eq!(a.digest, b.digest, "{format:?}: one module, one digest");
        assert_eq!(a.manifest_bytes, b.manifest_bytes);
    }
    let compat = image(&wasm, Format::Compat).unwrap();
    assert_eq!(compat.layers.len(), 1);
    assert_eq!(compat.layers[0].media_type, OCI_LAYER_TAR_GZIP);
    let gz = &compat.layers[0].data;
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "gzip without a timestamp");
    assert_eq!(gz[3] & 0x08, 0, "gzip without a file name");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
    let entries: Vec<_> = archive.entries().unwrap().map(|e| e.unwrap().header().clone()).collect();
    assert_eq!(entries.len(), 1);
    let h = &entries[0];
    assert_eq!(h.path().unwrap().to_str(), Some("plugin.wasm"));
    assert_eq!((h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap()), (0, 0, 0, 0o644));
    let artifact = image(&wasm, Format::Artifact).unwrap();
    let types: Vec<&str> = artifact.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(types, [WASM_CONFIG, WASM_LAYER], "the two-layer Wasm artifact");
}

#[test]
fn the_layout_holds_every_blob_under_its_digest() {
    let img = image(&fault_wasm(), Format::Compat).unwrap();
    let layout = std::env::temp_dir().join(format!("meshplug-layout-{}", std::process::id()));
    write_layout(&img, &layout, "0.1.0").unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.digest.as_str());
    for bytes in [&img.manifest_bytes, &img.config.data, &img.layers[0].data] {
        let name = meshplug_harness::deploy::oci::sha256(bytes);
        assert!(layout.join("blobs/sha256").join(name.trim_start_matches("sha256:")).is_file());
    }
    let _ = std::fs::remove_dir_all(&layout);
}

fn push_and_pull(reg: &Registry, name: &str, img: &Image, sha256: Option<&str>) -> Result<(String, Vec<u8>), Refusal> {
    let url = format!("oci://127.0.0.1:{}/meshplug/{name}:0.1.0", reg.port);
    assert_eq!(push(img, &url).unwrap(), img.digest, "the registry stored the manifest as packaged");
    pull(&url, sha256)
}

#[test]
fn istio_agent_accepts_both_shapes_and_the_bytes_are_the_module() {
    let reg = registry();
    let wasm = fault_wasm();
    for (name, format) in [("compat", Format::Compat), ("artifact", Format::Artifact)] {
        let img = image(&wasm, format).unwrap();
        let (digest, bytes) = push_and_pull(&reg, name, &img, Some(img.sha256_hex())).unwrap();
        assert_eq!(digest, img.sha256_hex(), "{name}: the digest a WasmPlugin pins");
        assert!(bytes == wasm, "{name}: the pulled module differs from fault.wasm");
    }
    // The Docker v2 shape the agent also takes: its last layer, a Docker tar.gz holding plugin.wasm.
    let (_, layer) = plugin_tar_gz(&wasm).unwrap();
    let docker = Image::assemble(
        DOCKER_MANIFEST,
        blob("application/vnd.docker.container.image.v1+json", b"{}"),
        vec![blob(DOCKER_LAYER_TAR_GZIP, &layer)],
        &[],
    )
    .unwrap();
    let (_, bytes) = push_and_pull(&reg, "docker", &docker, None).unwrap();
    assert!(bytes == wasm);
}

#[test]
fn istio_agent_refuses_what_it_refuses_with_its_reasons() {
    let reg = registry();
    let wasm = fault_wasm();
    // The one-layer Wasm artifact meshplug pushed before: "number of layers must be 2 but got 1".
    let one_layer =
        Image::assemble(OCI_MANIFEST, blob(WASM_CONFIG, b"{}"), vec![blob(WASM_LAYER, &wasm)], &[]).unwrap();
    let err = push_and_pull(&reg, "one-layer", &one_layer, None).unwrap_err().to_string();
    assert!(err.contains("could not parse as oci variant: number of layers must be 2 but got 1"), "{err}");
    assert!(err.contains(&format!("invalid media type {WASM_LAYER} (expect {OCI_LAYER_TAR_GZIP})")), "{err}");

    // A pinned sha256 that is not the manifest digest.
    let img = image(&wasm, Format::Compat).unwrap();
    let wrong = "0".repeat(64);
    let err = push_and_pull(&reg, "pinned", &img, Some(&wrong)).unwrap_err();
    assert!(matches!(err, Refusal::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("which does not match"), "{err}");

    // A compat image whose plugin.wasm is not Wasm, and one without plugin.wasm.
    let not_wasm = image(b"hello, world: not a module", Format::Compat).unwrap();
    let err = push_and_pull(&reg, "not-wasm", &not_wasm, None).unwrap_err();
    assert!(matches!(err, Refusal::NotWasm(_)), "{err}");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("filter.wasm").unwrap();
    h.set_size(wasm.len() as u64);
    h.set_cksum();
    tar.append(&h, wasm.as_slice()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    let misnamed = Image::assemble(
        OCI_MANIFEST,
        blob(OCI_CONFIG, b"{}"),
        vec![blob(OCI_LAYER_TAR_GZIP, &gz.finish().unwrap())],
        &[],
    )
    .unwrap();
    let err = push_and_pull(&reg, "misnamed", &misnamed, None).unwrap_err().to_string();
    assert!(err.contains("plugin.wasm not found in the archive"), "{err}");
}

/// An image index (a multi-platform tag): istio-agent's `remote.Descriptor.Image()` resolves it to the
/// `linux/amd64` image (go-containerregistry's default platform), and the digest it checks against the
/// WasmPlugin's `sha256` is that image's manifest digest, not the index's. An index without a
/// linux/amd64 image is refused.
#[test]
fn an_image_index_resolves_to_its_linux_amd64_image() {
    use meshplug_harness::deploy::oci::{push_manifest_raw, sha256, OCI_INDEX};
    let reg = registry();
    let amd64 = image(&fault_wasm(), Format::Compat).unwrap();
    let arm64 = image(b"\0asm\x01\0\0\0", Format::Compat).unwrap();
    let base = format!("oci://{}/meshplug/fault-index", reg.host());
    push(&amd64, &format!("{base}:amd64")).unwrap();
    push(&arm64, &format!("{base}:arm64")).unwrap();
    let entry = |img: &Image, arch: &str| {
        serde_json::json!({"mediaType": img.manifest_media_type, "digest": img.digest,
                           "size": img.manifest_bytes.len(), "platform": {"os": "linux", "architecture": arch}})
    };
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                   "manifests": [entry(&arm64, "arm64"), entry(&amd64, "amd64")]});
    let bytes = serde_json::to_vec(&index).unwrap();
    push_manifest_raw(&format!("{base}:1.0"), &bytes, OCI_INDEX).unwrap();
    let child = amd64.digest.trim_start_matches("sha256:").to_string();
    let (digest, wasm) = pull(&format!("{base}:1.0"), Some(&child)).unwrap();
    assert_eq!((digest, wasm == fault_wasm()), (child.clone(), true), "the linux/amd64 image, its digest");
    let index_digest = sha256(&bytes).trim_start_matches("sha256:").to_string();
    match pull(&format!("{base}:1.0"), Some(&index_digest)) {
        Err(Refusal::Checksum { actual, .. }) => assert_eq!(actual, child, "the child's digest is the one checked"),
        other => panic!("pinned to the index digest: {other:?}"),
    }
    let arm_only =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(&arm64, "arm64")]});
    push_manifest_raw(&format!("{base}:arm"), &serde_json::to_vec(&arm_only).unwrap(), OCI_INDEX).unwrap();
    let e = pull(&format!("{base}:arm"), None).unwrap_err().to_string();
    assert!(e.contains("no child with platform linux/amd64"), "{e}");
}

/// Pull-secret keys as docker's config loader reads them (docker/cli configfile: `ConvertToHostname`,
/// `auth` decoded over username/password), and the scheme go-containerregistry picks per registry.
#[test]
fn pull_secrets_and_schemes_follow_the_agents_libraries() {
    use meshplug_harness::deploy::oci::{default_protocol, docker_config_auth, RegistryAuth};
    use oci_client::client::ClientProtocol;
    let config = br#"{"auths": {
        "https://registry.example.com/v1/": {"auth": "dXNlcjpwYXNz"},
        "http://other.example.com": {"username": "u2", "password": "p2", "auth": ""},
        "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA==", "username": "ignored", "password": "ignored"}
    }}"#;
    let got = |host: &str| docker_config_auth(config, host).unwrap();
    assert!(
        matches!(got("registry.example.com"), RegistryAuth::Basic(u, p) if (u.as_str(), p.as_str()) == ("user", "pass"))
    );
    assert!(matches!(got("other.example.com"), RegistryAuth::Basic(u, _) if u == "u2"));
    assert!(
        matches!(got("docker.io"), RegistryAuth::Basic(u, p) if (u.as_str(), p.as_str()) == ("hub", "secret")),
        "auth wins"
    );
    assert!(matches!(got("unknown.example.com"), RegistryAuth::Anonymous));
    for (registry, plain) in [
        ("127.0.0.1:5000", true),
        ("localhost:5000", true),
        ("10.1.2.3:5000", true),
        ("192.168.0.9", true),
        ("[::1]:5000", true),
        ("ghcr.io", false),
        ("registry.internal:5000", false),
        ("8.8.8.8:5000", false),
    ] {
        assert_eq!(matches!(default_protocol(registry), ClientProtocol::Http), plain, "{registry}");
    }
}

/// A registry that answers HTTPS in plain HTTP: istio-agent (`PrepareFetch`) sees go-containerregistry's
/// "server gave HTTP response to HTTPS client" and asks again over plain HTTP; the emulation does the
/// same on rustls' equivalent error. (The registry here is on 127.0.0.1, which the agent would reach
/// over HTTP to begin with; starting with HTTPS shows the fallback.)
#[test]
fn a_plain_http_registry_is_reached_after_the_https_attempt() {
    use meshplug_harness::deploy::oci::{pull_starting_with, RegistryAuth};
    let reg = registry();
    let img = image(&fault_wasm(), Format::Compat).unwrap();
    let url = format!("oci://{}/meshplug/fault:plain", reg.host());
    push(&img, &url).unwrap();
    let https = oci_client::client::ClientProtocol::Https;
    let (digest, wasm) = pull_starting_with(&url, None, RegistryAuth::Anonymous, false, https).unwrap();
    assert_eq!((digest, wasm), (img.digest.trim_start_matches("sha256:").to_string(), fault_wasm()));
}
