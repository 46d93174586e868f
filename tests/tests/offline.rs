//! Offline by construction: no HTTP, TLS, socket or async-runtime crate may enter the dependency
//! tree of anything that ships (the CLI, the Python package's native module, and every library
//! crate they use).

use seedvae_tests::repo_root;
use std::process::Command;

/// Crates that would mean network code (or a runtime for it) in the binary.
const DENY: &[&str] = &[
    "reqwest",
    "hyper",
    "hyper-util",
    "ureq",
    "curl",
    "curl-sys",
    "isahc",
    "attohttpc",
    "surf",
    "h2",
    "h3",
    "quinn",
    "socket2",
    "mio",
    "tokio",
    "async-std",
    "smol",
    "rustls",
    "native-tls",
    "openssl",
    "openssl-sys",
    "tungstenite",
    "url",
    "ehttp",
    "minreq",
];

#[test]
fn no_networking_crate_in_the_runtime_dependency_tree() {
    let crates = [
        "seedvae-cli",
        "seedvae-py",
        "seedvae",
        "seedvae-runner",
        "seedvae-engine",
        "seedvae-onnx",
        "seedvae-weights",
    ];
    for krate in crates {
        let out = Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "--locked",
                "-e",
                "normal",
                "--prefix",
                "none",
                "-p",
                krate,
                "--manifest-path",
            ])
            .arg(repo_root().join("Cargo.toml"))
            .output()
            .expect("run cargo tree");
        assert!(
            out.status.success(),
            "cargo tree -p {krate}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        let names: Vec<&str> = tree
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(names.len() > 5, "{krate}: implausibly small tree:\n{tree}");
        let bad: Vec<&&str> = names.iter().filter(|n| DENY.contains(n)).collect();
        assert!(
            bad.is_empty(),
            "{krate} depends on networking crates {bad:?}"
        );
    }
}
