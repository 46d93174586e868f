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

/// The library code of a source file: no tests, no comments (line by line, numbered from 1).
fn library_code(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Every option name the library's messages use (`` `tile_px` ``) is one the CLI translates to
/// its flag and the Python package to its keyword: a new option cannot reach a user untranslated.
#[test]
fn every_library_option_name_is_translated() {
    let table = |rel: &str| std::fs::read_to_string(repo_root().join(rel)).unwrap();
    let (cli, py) = (
        table("crates/seedvae-cli/src/commands/flags.rs"),
        table("crates/seedvae-py/src/errors.rs"),
    );
    let mut names = std::collections::BTreeSet::new();
    for (_, text) in library_sources() {
        for (_, line) in library_code(&text) {
            for piece in line.split('`').skip(1).step_by(2) {
                let ident = piece.starts_with(|c: char| c.is_ascii_lowercase())
                    && piece
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if ident {
                    names.insert(piece.to_string());
                }
            }
        }
    }
    assert!(names.len() > 10, "option names not found: {names:?}");
    let missing: Vec<String> = names
        .iter()
        .flat_map(|n| {
            let key = format!("(\"`{n}`\",");
            [("CLI flags.rs", &cli), ("Python errors.rs", &py)]
                .into_iter()
                .filter(move |(_, t)| !t.contains(&key))
                .map(move |(w, _)| format!("`{n}` has no entry in {w}"))
        })
        .collect();
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// No `Box::leak` in library code: what a backend needs for the process (TensorRT-RTX's logger
/// and runtime) is made once and kept in a static, not leaked on every open.
#[test]
fn library_code_leaks_nothing() {
    let mut found = Vec::new();
    for (p, text) in library_sources() {
        for (i, line) in library_code(&text) {
            if line.contains("Box::leak") || line.contains("mem::forget") {
                found.push(format!("{}:{i}: {}", p.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "leaks in library code:\n{}",
        found.join("\n")
    );
}

/// The front door's modules form no cycle: `prepare` and `load` apart, the first-run check
/// shared by `load` and `selftest` without depending on either, `run` on top. Edges are the
/// `crate::module` paths (and names re-exported at the root, resolved to their module) in each
/// module's library code.
#[test]
fn the_library_modules_form_no_cycle() {
    let src = repo_root().join("crates/seedvae/src");
    let mut modules: std::collections::BTreeMap<String, String> = Default::default();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            modules.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    let lib = modules.remove("lib").expect("lib.rs");
    assert!(modules.len() > 8, "modules not found");
    // Root re-exports: `pub use module::{A, B}` makes `crate::A` a path into `module`.
    let flat: String = lib.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reexport = std::collections::BTreeMap::new();
    for part in flat.split("pub use ").skip(1) {
        let stmt = part.split(';').next().unwrap_or("");
        let Some((module, names)) = stmt.split_once("::") else {
            continue;
        };
        if modules.contains_key(module) {
            for n in names
                .trim_matches(|c| c == '{' || c == '}' || c == ' ')
                .split(',')
            {
                let n = n.split(" as ").last().unwrap_or("").trim();
                if !n.is_empty() {
                    reexport.insert(n.to_string(), module.to_string());
                }
            }
        }
    }
    let mut edges: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> =
        Default::default();
    for (m, text) in &modules {
        let code: Vec<&str> = library_code(text).map(|(_, l)| l).collect();
        let code = code.join(" ");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + 7..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("")],
            };
            for n in names {
                let target = if modules.contains_key(n) {
                    Some(n.to_string())
                } else {
                    reexport.get(n).cloned()
                };
                if let Some(t) = target.filter(|t| t != m) {
                    edges.entry(m.as_str()).or_default().insert(t);
                }
            }
        }
    }
    assert!(
        edges.get("load").is_some_and(|e| e.contains("prepare")),
        "the use graph was not read: {edges:?}"
    );
    // Depth-first search for a back edge; the cycle is the path from its target.
    fn visit<'a>(
        m: &'a str,
        edges: &'a std::collections::BTreeMap<&str, std::collections::BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m) {
            return None;
        }
        path.push(m);
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = Default::default();
    for m in modules.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("a module cycle in crates/seedvae: {}", cycle.join(" → "));
        }
    }
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
