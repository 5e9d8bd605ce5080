//! `package` + `push` against a real OCI registry (Debian's docker-registry, started here on
//! 127.0.0.1 and stopped at the end, even on failure), pulled back to compare digest and bytes.

use meshplug_harness::oci::{image, pull, push, write_layout, WASM_LAYER};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Registry {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn registry() -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("meshplug-registry-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let bin = ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("docker-registry is not installed: scripts/setup installs Debian's docker-registry package");
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let r = Registry { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    r
}

#[test]
fn package_push_and_pull_back_give_the_same_digest_and_bytes() {
    let module = meshplug_harness::filters::module_path("fault").unwrap();
    let wasm = std::fs::read(&module).unwrap();
    let img = image(&wasm).unwrap();
    assert_eq!(img.layer.media_type, WASM_LAYER);

    let layout = std::env::temp_dir().join(format!("meshplug-layout-{}", std::process::id()));
    write_layout(&img, &layout, "0.1.0").unwrap();
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.digest.as_str());
    assert!(layout.join("blobs/sha256").join(img.digest.trim_start_matches("sha256:")).is_file());
    let _ = std::fs::remove_dir_all(&layout);

    let reg = registry();
    let target = format!("oci://127.0.0.1:{}/meshplug/fault:0.1.0", reg.port);
    let pushed = push(&img, &target).unwrap();
    assert_eq!(pushed, img.digest, "the registry stored the manifest `package` computed");
    let (pulled_digest, bytes) = pull(&target).unwrap();
    assert_eq!(pulled_digest, img.digest);
    assert!(bytes == wasm, "the pulled module differs from fault.wasm");
}
