//! The CLI only parses, calls the `seedvae` library and prints. This reads its sources and
//! fails on what would mean orchestration crept back in: a crate below the library, the
//! cache layout, conversion / calibration / build / refit logic, or a command's argument struct
//! filled in by another command.

use seedvae_tests::repo_root;

fn cli_sources() -> Vec<(String, String)> {
    let dir = repo_root().join("crates/seedvae-cli/src");
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p.display().to_string(), text));
            }
        }
    }
    assert!(out.len() > 5, "CLI sources not found");
    out
}

#[test]
fn the_cli_holds_no_orchestration() {
    let _machine = super::common::sharing();
    // Crates below the library, the cache's layout, and the steps the library owns.
    let forbidden = [
        "seedvae_weights",
        "seedvae_onnx",
        "seedvae_engine",
        "seedvae_runner",
        "\"engines\"",
        "\"graphs\"",
        "\"recipes\"",
        "\"locks\"",
        "manifest.json\"",
        "engine.trt\"",
        "GraphRecipe",
        "Job {",
        "calibrate::",
        "calibration_inputs",
        "export_fp8",
        "refit::",
        "build_engine",
    ];
    let mut found = Vec::new();
    for (path, text) in cli_sources() {
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                if code.contains(f) {
                    found.push(format!("{path}:{}: `{f}` in: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "orchestration in the CLI:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_command_fills_another_commands_arguments() {
    let _machine = super::common::sharing();
    let mut found = Vec::new();
    for (path, text) in cli_sources() {
        let own = std::path::Path::new(&path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for (i, line) in text.lines().enumerate() {
            // `other::Args {` builds another command's flags; shared flags live in args.rs.
            for cmd in [
                "build", "convert", "decode", "encode", "demo", "inspect", "pack", "synth",
            ] {
                let other = format!("{cmd}::Args {{");
                let other_pack = format!("{cmd}::PackArgs {{");
                if cmd != own && (line.contains(&other) || line.contains(&other_pack)) {
                    found.push(format!("{path}:{}: {}", i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "argument structs built outside parsing:\n{}",
        found.join("\n")
    );
}

/// Library crates return typed errors (one `thiserror` type per crate, causes kept), never
/// `Result<_, String>`, which loses the cause.
#[test]
fn library_crates_return_no_string_errors() {
    let mut found = Vec::new();
    for (p, text) in library_sources() {
        // Signatures may span lines: look at the text with whitespace squeezed.
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for pat in [", String>", ",String>"] {
            for (i, _) in flat.match_indices(pat) {
                let before = &flat[..i];
                let open = before.rfind('<').unwrap_or(0);
                if before[..open].ends_with("Result") {
                    found.push(format!(
                        "{}: {}",
                        p.display(),
                        &flat[open.saturating_sub(6)..i + pat.len()]
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Result<_, String> in library crates:\n{}",
        found.join("\n")
    );
}

/// Colour correction is arithmetic: its crate depends on no GPU, ONNX or seedvae crate, so its
/// tests (the numz reference included) link nothing but serde.
#[test]
fn the_colour_crate_depends_on_arithmetic_alone() {
    let manifest =
        std::fs::read_to_string(repo_root().join("crates/seedvae-color/Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.starts_with('#'))
        .collect();
    assert_eq!(deps, ["serde"], "seedvae-color depends on {deps:?}");
    assert!(!manifest.contains("[dev-dependencies]"), "{manifest}");
}

/// The library's messages name options by their library names (`` `tile_px` ``), never by a
/// CLI flag: the CLI (`commands/flags.rs`) and the Python package (`seedvae-py/src/errors.rs`)
/// translate them for their users. Tests and comments are not messages.
#[test]
fn library_messages_name_no_cli_flags() {
    let mut found = Vec::new();
    for (p, text) in library_sources() {
        let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
        for (i, line) in code.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("//") {
                continue;
            }
            let flag = t
                .match_indices("--")
                .any(|(at, _)| t[at + 2..].starts_with(|c: char| c.is_ascii_lowercase()));
            if flag {
                found.push(format!("{}:{}: {t}", p.display(), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "CLI flags in library code:\n{}",
        found.join("\n")
    );
}

/// The library crates' Rust sources, with their text.
fn library_sources() -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    for krate in [
        "seedvae",
        "seedvae-weights",
        "seedvae-onnx",
        "seedvae-engine",
        "seedvae-runner",
        "seedvae-color",
    ] {
        let mut stack = vec![repo_root().join("crates").join(krate).join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    out.push((p, text));
                }
            }
        }
    }
    out
}
