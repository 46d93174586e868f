//! `seedvae decode` / `seedvae encode` end to end on the CPU backend (this machine has no GPU):
//! the goldens, streaming = one-shot, flat memory in T, tiling and seams, the TensorRT-RTX
//! refusal and fallback, bad inputs, and a decode with the network cut off.

use super::common::{cpu, random_latent, s, seedvae, tiny, write_latent};
use seedvae_runner::Tensor;
use seedvae_tests::*;
use std::path::Path;

/// Run and expect success; returns the JSON summary.
fn ok_json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--json", "--quiet"]);
    let (code, out, err) = seedvae(&all);
    assert_eq!(code, 0, "{args:?}\n{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Run and expect failure with nothing at `output`; returns the message.
fn fails(args: &[&str], output: &Path) -> String {
    let (code, out, err) = seedvae(args);
    assert_ne!(code, 0, "{args:?} succeeded:\n{out}{err}");
    assert!(!output.exists(), "{} left behind", output.display());
    if let Some(dir) = output.parent().filter(|d| d.is_dir()) {
        let leftovers: Vec<_> = sorted_entries(dir)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("seedvae-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
    format!("{out}{err}")
}

fn read_f64(path: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let w = seedvae_weights::WeightFile::open(path).unwrap();
    let t = w.get(name).unwrap();
    (t.shape.clone(), w.f64(name).unwrap())
}

fn png_rgb(path: &Path) -> (usize, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0u8; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.height as usize, info.width as usize, buf)
}

/// The fixture's decoded golden for `case`: shape, values, the bound a decode is held to — fp64
/// where the fixture has it (1e-5), else the fp32 golden (its own rounding: 2e-5) — and which.
fn decoded_golden(case: &str) -> (Vec<usize>, Vec<f64>, f64, bool) {
    let golden = fixture(&format!("vae_tiny/decoded_{case}.safetensors"));
    let has64 = seedvae_weights::WeightFile::open(&golden)
        .unwrap()
        .get("decoded_f64")
        .is_some();
    let (gs, g) = read_f64(&golden, if has64 { "decoded_f64" } else { "decoded" });
    (gs, g, if has64 { 1e-5 } else { 2e-5 }, has64)
}

#[test]
fn decoding_the_fixtures_reproduces_the_goldens_as_tensors_and_png_frames() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for case in ["t1_8x8", "t2_8x8", "t3_8x8", "t2_6x10"] {
        let latent = fixture(&format!("vae_tiny/latent_{case}.safetensors"));
        let (gs, g, lim, has64) = decoded_golden(case);
        let out = dir.path().join(format!("{case}.safetensors"));
        let j = ok_json(&cpu("decode", &tiny(), s(&latent), s(&out), s(&cache), &[]));
        assert_eq!(j["backend"], "onnxruntime-cpu");
        let (shape, v) = read_f64(&out, "video");
        assert_eq!(shape, gs, "{case}");
        let e = rel_l2(&v, &g);
        eprintln!(
            "decode {case}: rel L2 {e:.2e} vs the {} golden (limit {lim:.0e}), {} chunk(s)",
            if has64 { "fp64" } else { "fp32" },
            j["chunks"]
        );
        assert!(e <= lim, "{case}: {e}");

        // PNG frames: within 1 level of the golden converted the same way.
        let frames = dir.path().join(format!("{case}_png"));
        ok_json(&cpu(
            "decode",
            &tiny(),
            s(&latent),
            s(&frames),
            s(&cache),
            &[],
        ));
        let files = super::common::frames(&frames);
        let [_, _, f, h, w] = <[usize; 5]>::try_from(gs.as_slice()).unwrap();
        assert_eq!(files.len(), f, "{case}");
        let mut worst = 0i32;
        for (fi, file) in files.iter().enumerate() {
            let (ph, pw, rgb) = png_rgb(file);
            assert_eq!((ph, pw), (h, w));
            for i in 0..h * w {
                for c in 0..3 {
                    let want = seedvae_runner::media::png::to_u8(g[(c * f + fi) * h * w + i] as f32)
                        as i32;
                    worst = worst.max((rgb[3 * i + c] as i32 - want).abs());
                }
            }
        }
        assert!(worst <= 1, "{case}: PNG off by {worst} levels");
    }
}

#[test]
fn encoding_the_fixture_video_reproduces_the_golden_mean() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let video = fixture("vae_tiny/video_t9_32x48.safetensors");
    let (_, mean64) = read_f64(
        &fixture("vae_tiny/encoded_t9_32x48.safetensors"),
        "latent_mean_f64",
    );
    for chunk in ["1", "2"] {
        let out = dir.path().join(format!("mean{chunk}.safetensors"));
        let j = ok_json(&cpu(
            "encode",
            &tiny(),
            s(&video),
            s(&out),
            s(&dir.path().join("cache")),
            &["--chunk", chunk],
        ));
        let (shape, v) = read_f64(&out, "latent");
        assert_eq!(shape, vec![1, 16, 3, 4, 6]);
        let e = rel_l2(&v, &mean64);
        eprintln!(
            "encode chunk {chunk}: rel L2 {e:.2e} vs the fp64 golden ({} calls)",
            j["calls"]
        );
        assert!(e <= 1e-5, "chunk {chunk}: {e}");
    }
    // The DiT layout: [T, h, w, 16] × 0.9152, and decode --dit-latent takes it back.
    let dit = dir.path().join("dit.safetensors");
    ok_json(&cpu(
        "encode",
        &tiny(),
        s(&video),
        s(&dit),
        s(&dir.path().join("cache")),
        &["--dit-latent"],
    ));
    let (shape, d) = read_f64(&dit, "latent");
    assert_eq!(shape, vec![3, 4, 6, 16]);
    let (t, h, w) = (3, 4, 6);
    let m = |c: usize, ti: usize, y: usize, x: usize| mean64[((c * t + ti) * h + y) * w + x];
    let e = (0..16)
        .map(|c| (d[((2 * h + 3) * w + 5) * 16 + c] - m(c, 2, 3, 5) * 0.9152).abs())
        .fold(0.0, f64::max);
    assert!(e < 1e-4, "{e}");
}

#[test]
fn streaming_with_chunks_1_2_3_equals_one_shot() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // ≥ 128 positions per frame at every level and one thread: then the CPU kernels accumulate
    // every output in the same order whatever the chunk (tests/tests/export.rs, Bound::Strict).
    let latent = dir.path().join("l.safetensors");
    write_latent(&latent, &random_latent(7, 16, 8, 3));
    let oneshot = dir.path().join("oneshot.onnx");
    let (code, out, err) = seedvae(&["convert", &tiny(), "-o", s(&oneshot)]);
    assert_eq!(code, 0, "{out}{err}");
    let run = |model: &str, chunk: Option<&str>, name: &str| -> Vec<f64> {
        let o = dir.path().join(name);
        let mut a = cpu(
            "decode",
            model,
            s(&latent),
            s(&o),
            s(&cache),
            &["--threads", "1"],
        );
        if let Some(c) = chunk {
            a.extend(["--chunk", c]);
        }
        ok_json(&a);
        read_f64(&o, "video").1
    };
    let reference = run(s(&oneshot), None, "ref.safetensors");
    assert_eq!(reference.len(), 3 * 25 * 128 * 64);
    for c in ["1", "2", "3"] {
        let v = run(&tiny(), Some(c), &format!("c{c}.safetensors"));
        let e = rel_l2(&v, &reference);
        eprintln!("chunk {c}: rel L2 {e:.2e} vs one-shot");
        assert!(e <= 1e-6, "chunk {c}: {e}");
    }
}

#[test]
fn peak_host_memory_is_flat_in_clip_length() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut peaks = Vec::new();
    for t in [9usize, 17, 33] {
        let latent = dir.path().join(format!("l{t}.safetensors"));
        write_latent(&latent, &random_latent(t, 16, 16, t as u64));
        let out = dir.path().join(format!("v{t}.y4m"));
        let j = ok_json(&cpu(
            "decode",
            &tiny(),
            s(&latent),
            s(&out),
            s(&cache),
            &["--threads", "2"],
        ));
        assert_eq!(j["frames"], 4 * t - 3);
        // Device memory is reported by seedvae's CUDA executor only.
        assert!(j["device_planned_bytes"].is_null() && j["device_peak_bytes"].is_null());
        let peak = j["peak_host_bytes"].as_u64().expect("Linux reports VmHWM");
        // What a one-shot run would hold just for its output (f32 frames).
        let whole = (4 * t - 3) * 3 * 128 * 128 * 4;
        eprintln!(
            "T = {t}: {} frames, peak host memory {:.1} MiB (the whole output alone: {:.1} MiB)",
            4 * t - 3,
            peak as f64 / 1048576.0,
            whole as f64 / 1048576.0
        );
        peaks.push(peak);
    }
    // From 9 to 33 latent frames a run holding its output would grow by 96 frames (18 MiB of
    // f32); streaming chunk by chunk into the sink must not grow by a fifth of that.
    assert!(peaks[2] < peaks[0] + 4 * 1048576, "{peaks:?}");
}

/// Mean |Δ| between neighbouring columns at the given x positions (all rows, channels, frames).
fn column_jump(v: &[f64], planes: usize, h: usize, w: usize, xs: &[usize]) -> f64 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for p in 0..planes {
        for y in 0..h {
            for &x in xs {
                let i = (p * h + y) * w + x;
                sum += (v[i] - v[i - 1]).abs();
                n += 1;
            }
        }
    }
    sum / n as f64
}

#[test]
fn tiled_decoding_differs_boundedly_and_leaves_no_seam() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let latent = dir.path().join("l.safetensors");
    let (t, h, w) = (2, 8, 40);
    // A smooth latent (the decoder's content varies slowly; random noise hides any seam).
    let mut l = random_latent(t, h, w, 11);
    if let Some(v) = l.f32_mut() {
        for (i, x) in v.iter_mut().enumerate() {
            let (xx, yy, c) = (i % w, (i / w) % h, i / (w * h * t));
            *x = 0.2 * *x + ((xx as f32) * 0.15 + c as f32).sin() + ((yy as f32) * 0.2).cos();
        }
    }
    write_latent(&latent, &l);
    let w8 = tiny();
    let run = |extra: &[&str], name: &str| -> (Vec<f64>, serde_json::Value) {
        let o = dir.path().join(name);
        let mut a = cpu("decode", &w8, s(&latent), s(&o), s(&cache), &[]);
        a.extend_from_slice(extra);
        let j = ok_json(&a);
        (read_f64(&o, "video").1, j)
    };
    let (whole, j0) = run(&["--no-tiling"], "whole.safetensors");
    assert_eq!(j0["tiles"], 1);
    // 128 px tiles with 64 px overlap over 320 px: stride 8 latent → tiles at 0, 8, 16, 24.
    let (tiled, j) = run(
        &["--tile-size", "128", "--tile-overlap", "64"],
        "tiled.safetensors",
    );
    assert_eq!(j["tiles"], 4);
    let (max, mean) = (
        max_abs_diff(&tiled, &whole),
        tiled
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / whole.len() as f64,
    );
    let std = (whole.iter().map(|x| x * x).sum::<f64>() / whole.len() as f64).sqrt();
    eprintln!("tiled vs untiled: max |Δ| {max:.3}, mean |Δ| {mean:.4} (output RMS {std:.3})");
    assert!(
        max.is_finite() && mean < std,
        "tiling error {mean} vs RMS {std}"
    );
    // Seams: the columns where a tile starts or ends (inside the frame) vs all other columns.
    let (fh, fw, planes) = (8 * h, 8 * w, 3 * (4 * t - 3));
    // Tiles cover [0,128), [64,192), [128,256), [192,320) px: starts 64, 128, 192; ends 128, 192, 256.
    let borders = [64usize, 128, 192, 256];
    let interior: Vec<usize> = (1..fw).filter(|x| !borders.contains(x)).collect();
    let (jb, ji) = (
        column_jump(&tiled, planes, fh, fw, &borders),
        column_jump(&tiled, planes, fh, fw, &interior),
    );
    eprintln!(
        "mean |jump| across tile borders {jb:.4}, elsewhere {ji:.4} (ratio {:.2})",
        jb / ji
    );
    assert!(jb <= 2.0 * ji, "seam: {jb} vs {ji}");
    // For reference: the untiled frame's jumps at the same columns.
    let (jw, jwi) = (
        column_jump(&whole, planes, fh, fw, &borders),
        column_jump(&whole, planes, fh, fw, &interior),
    );
    eprintln!("untiled, same columns: {jw:.4} vs {jwi:.4}");
    // Tiles run one after another over the whole clip, each with its own stream: chunked
    // streaming equals one call per tile, frame for frame in the blending accumulator.
    let tiled_args = |chunk| {
        [
            "--tile-size",
            "128",
            "--tile-overlap",
            "64",
            "--chunk",
            chunk,
        ]
    };
    let (one, j1) = run(&tiled_args("2"), "tiled_one_call.safetensors");
    let (streamed, j2) = run(&tiled_args("1"), "tiled_streamed.safetensors");
    assert_eq!(
        (j1["calls"].as_u64(), j2["calls"].as_u64()),
        (Some(4), Some(8))
    );
    assert!(j2["accumulator_bytes"].as_u64().unwrap() > 0);
    let e = seedvae_tests::rel_l2(&streamed, &one);
    eprintln!("tiled, chunks of 1 vs one call per tile: rel L2 {e:.2e}");
    assert!(e <= 1e-5, "tile-major streaming: {e}");
}

#[test]
fn without_a_gpu_tensorrt_refuses_with_the_reason_and_auto_falls_back() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let latent = fixture("vae_tiny/latent_t1_8x8.safetensors");
    let out = dir.path().join("f");
    let msg = fails(
        &[
            "decode",
            "-m",
            &tiny(),
            s(&latent),
            "-o",
            s(&out),
            "--backend",
            "tensorrt",
            "--cache",
            s(&dir.path().join("c")),
        ],
        &out,
    );
    assert!(
        msg.contains("TensorRT-RTX backend cannot run here") && msg.contains("no NVIDIA driver"),
        "{msg}"
    );
    let (code, stdout, stderr) = seedvae(&[
        "decode",
        "-m",
        &tiny(),
        s(&latent),
        "-o",
        s(&out),
        "--cache",
        s(&dir.path().join("c")),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("TensorRT-RTX not used: no NVIDIA driver") && stderr.contains("on the CPU"),
        "{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("TensorRT-RTX not used"))
            .count(),
        1,
        "{stderr}"
    );
    assert!(stdout.contains("onnxruntime-cpu"), "{stdout}");
    // The summary and the log say why in the CLI's words, never the library's placeholders.
    assert!(
        !stdout.contains("`install_") && !stderr.contains("`install_"),
        "{stdout}{stderr}"
    );
    assert_eq!(super::common::frames(&out).len(), 1);
}

#[test]
fn bad_inputs_are_refused_with_the_reason_and_leave_nothing() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    let out = d.join("out.safetensors");
    let w8 = tiny();
    let dec = |latent: &Path, extra: &[&str]| {
        let mut a = cpu("decode", &w8, s(latent), s(&out), s(&cache), &[]);
        a.extend_from_slice(extra);
        fails(&a, &out)
    };
    // Wrong channels, wrong rank.
    let p = d.join("c8.safetensors");
    write_latent(
        &p,
        &Tensor::f32(vec![1, 8, 1, 4, 4], vec![0.0; 128]).unwrap(),
    );
    let m = dec(&p, &[]);
    assert!(
        m.contains("c8.safetensors")
            && m.contains("[1, 16, T, h, w]")
            && m.contains("[1, 8, 1, 4, 4]"),
        "{m}"
    );
    let p = d.join("r3.safetensors");
    write_latent(&p, &Tensor::f32(vec![16, 4, 4], vec![0.0; 256]).unwrap());
    let m = dec(&p, &[]);
    assert!(m.contains("[16, 4, 4]"), "{m}");
    // A channels-last latent gets the hint.
    let p = d.join("dit.safetensors");
    write_latent(
        &p,
        &Tensor::f32(vec![1, 2, 4, 4, 16], vec![0.0; 512]).unwrap(),
    );
    assert!(dec(&p, &[]).contains("--dit-latent"));
    let fine = d.join("fine.safetensors");
    ok_json(&cpu(
        "decode",
        &tiny(),
        s(&p),
        s(&fine),
        s(&cache),
        &["--dit-latent"],
    ));
    // The encoder's smallest frame (8 px) is the CPU graph's limit; the range is named.
    let v = d.join("v.safetensors");
    seedvae_runner::write_tensor(
        &v,
        "video",
        &Tensor::f32(vec![1, 3, 1, 4, 16], vec![0.0; 192]).unwrap(),
        seedvae_weights::DType::F32,
        true,
    )
    .unwrap();
    let lat = d.join("lat.safetensors");
    let m = fails(
        &cpu("encode", &tiny(), s(&v), s(&lat), s(&cache), &[]),
        &lat,
    );
    assert!(m.contains("multiples of 8"), "{m}");
    // An encoder given to decode; a missing model; not a weights file.
    let latent = fixture("vae_tiny/latent_t1_8x8.safetensors");
    let enc = d.join("enc.onnx");
    assert_eq!(
        seedvae(&["convert", &tiny(), "--part", "encoder", "-o", s(&enc)]).0,
        0
    );
    let m = fails(
        &[
            "decode",
            "-m",
            s(&enc),
            s(&latent),
            "-o",
            s(&out),
            "--backend",
            "cpu",
        ],
        &out,
    );
    assert!(
        m.contains("encoder model") && m.contains("needs the decoder"),
        "{m}"
    );
    let m = fails(
        &[
            "decode",
            "-m",
            s(&d.join("nope.safetensors")),
            s(&latent),
            "-o",
            s(&out),
        ],
        &out,
    );
    assert!(
        m.contains("nope.safetensors") && m.contains("no such file"),
        "{m}"
    );
    let junk = d.join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}").unwrap();
    let m = fails(
        &cpu("decode", s(&junk), s(&latent), s(&out), s(&cache), &[]),
        &out,
    );
    assert!(m.contains("junk.safetensors"), "{m}");
    // Engines: corrupt (one byte flipped), truncated, foreign (no manifest), manifest of another.
    let engine = d.join("e.trt");
    let (code, o, e) = seedvae(&[
        "build",
        &tiny(),
        "--precision",
        "fp16",
        "--streaming",
        "-o",
        s(&engine),
        "--cache",
        s(&cache),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{o}{e}");
    let good = std::fs::read(&engine).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&engine, &bad).unwrap();
    for backend in ["auto", "tensorrt", "cpu"] {
        let m = fails(
            &[
                "decode",
                "-m",
                s(&engine),
                s(&latent),
                "-o",
                s(&out),
                "--backend",
                backend,
            ],
            &out,
        );
        assert!(
            m.contains("e.trt") && m.contains("corrupt"),
            "{backend}: {m}"
        );
    }
    std::fs::write(&engine, &good[..good.len() - 100]).unwrap();
    let m = fails(
        &["decode", "-m", s(&engine), s(&latent), "-o", s(&out)],
        &out,
    );
    assert!(m.contains("truncated"), "{m}");
    let foreign = d.join("foreign.trt");
    std::fs::write(&foreign, &good).unwrap();
    let m = fails(
        &["decode", "-m", s(&foreign), s(&latent), "-o", s(&out)],
        &out,
    );
    assert!(m.contains("foreign.trt.manifest.json"), "{m}");
    // A valid engine on this GPU-less machine: auto cannot fall back to an engine (no graph).
    std::fs::write(&engine, &good).unwrap();
    let m = fails(
        &["decode", "-m", s(&engine), s(&latent), "-o", s(&out)],
        &out,
    );
    assert!(
        m.contains("no NVIDIA driver") && m.contains("needs the weights or an ONNX graph"),
        "{m}"
    );
    // What the TensorRT-RTX backend reads from a real manifest (no GPU needed): the per-call
    // limits of the default profile's streaming decoder, and tiles capped by a memory budget.
    let side = d.join("e.trt.manifest.json");
    let mut m: seedvae_engine::cache::Manifest =
        serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
    let lim = seedvae_runner::tensorrt::limits(&m).unwrap();
    assert_eq!((lim.t, lim.h, lim.w), ((1, 1), (8, 80), (8, 80)));
    let dm = m
        .info
        .device_memory
        .expect("the builder reports device memory");
    let cap = |budget: u64| seedvae_runner::planner::engine_memory_cap(&m, &lim, budget);
    let bytes = |e: usize| seedvae_runner::planner::call_bytes(&m, &lim, e).unwrap();
    assert_eq!(cap(u64::MAX / 2).unwrap(), None);
    // The plan counts the two carried state sets exactly: a call at edge e holds more than the
    // weights, the scaled activations and both sets of the contract's states.
    let states = seedvae_runner::planner::state_bytes(&m.info.contract, 56, 56);
    assert!(states > 0);
    assert!(bytes(56) > dm.weight_bytes + dm.activation_bytes / 4 + 2 * states);
    // The largest edge within a budget: it fits, one more does not.
    let budget = bytes(56) + 1;
    assert_eq!(cap(budget).unwrap(), Some(56));
    assert!(bytes(57) > budget);
    assert!(cap(dm.weight_bytes)
        .unwrap_err()
        .to_string()
        .contains("`vram_budget_gb`")); // the library's name; the CLI says --vram-budget
                                        // An engine built by another TensorRT-RTX version: refused before any GPU is looked for.
    m.key_parts.tensorrt_rtx = "1.6.0.20".into();
    m.key = m.key_parts.key();
    std::fs::write(&side, serde_json::to_vec(&m).unwrap()).unwrap();
    let m = fails(
        &[
            "decode",
            "-m",
            s(&engine),
            s(&latent),
            "-o",
            s(&out),
            "--backend",
            "tensorrt",
        ],
        &out,
    );
    assert!(
        m.contains("built with TensorRT-RTX 1.6.0.20") && m.contains("1.7.1.116"),
        "{m}"
    );
    // Unwritable output: a path under a regular file; an existing output without --force.
    let under = d.join("junk.safetensors").join("x.safetensors");
    let m = fails(
        &cpu("decode", &tiny(), s(&latent), s(&under), s(&cache), &[]),
        &under,
    );
    assert!(m.contains("x.safetensors"), "{m}");
    std::fs::write(&out, b"keep").unwrap();
    let (code, o, e) = seedvae(&cpu("decode", &tiny(), s(&latent), s(&out), s(&cache), &[]));
    assert_ne!(code, 0);
    assert!(format!("{o}{e}").contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");
    let bad_ext = d.join("x.mp4");
    let m = fails(
        &[
            "decode",
            "-m",
            &tiny(),
            s(&latent),
            "-o",
            s(&bad_ext),
            "--backend",
            "cpu",
        ],
        &bad_ext,
    );
    assert!(m.contains(".mp4") && m.contains(".y4m"), "{m}");
}

#[test]
fn frames_round_trip_through_y4m_and_png_into_encode() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let video = fixture("vae_tiny/video_t9_32x48.safetensors");
    let reference = dir.path().join("ref.safetensors");
    ok_json(&cpu(
        "encode",
        &tiny(),
        s(&video),
        s(&reference),
        s(&cache),
        &[],
    ));
    let (_, want) = read_f64(&reference, "latent");
    // The fixture video as 8-bit frames: PNG directory and y4m (via decode's writers is not
    // possible for a video, so write them here from the tensor).
    let (shape, v) = read_f64(&video, "video");
    let [_, _, t, h, w] = <[usize; 5]>::try_from(shape.as_slice()).unwrap();
    let pngs = dir.path().join("pngs");
    std::fs::create_dir(&pngs).unwrap();
    let y4m = dir.path().join("clip.y4m");
    let mut yw = seedvae_runner::media::y4m::Y4mWriter::new(
        std::fs::File::create(&y4m).unwrap(),
        h,
        w,
        (24, 1),
    )
    .unwrap();
    for f in 0..t {
        let plane = |c: usize| -> Vec<f32> {
            (0..h * w)
                .map(|i| v[(c * t + f) * h * w + i] as f32)
                .collect()
        };
        let (r, g, b) = (plane(0), plane(1), plane(2));
        std::fs::write(
            pngs.join(format!("{f:04}.png")),
            seedvae_runner::media::png::png_bytes([&r, &g, &b], h, w).unwrap(),
        )
        .unwrap();
        yw.frame([&r, &g, &b]).unwrap();
    }
    drop(yw);
    for (src, name) in [(&pngs, "png"), (&y4m, "y4m")] {
        let out = dir.path().join(format!("{name}.safetensors"));
        ok_json(&cpu("encode", &tiny(), s(src), s(&out), s(&cache), &[]));
        let (_, got) = read_f64(&out, "latent");
        let e = rel_l2(&got, &want);
        eprintln!("encode from {name} (8-bit) vs from the f32 tensor: rel L2 {e:.2e}");
        assert!(e < 0.05, "{name}: {e}");
    }
    // 6 frames are padded to 9: reflect and repeat differ only in the last latent frame.
    let six = dir.path().join("six");
    std::fs::create_dir(&six).unwrap();
    for f in 0..6 {
        std::fs::copy(
            pngs.join(format!("{f:04}.png")),
            six.join(format!("{f:04}.png")),
        )
        .unwrap();
    }
    let mut lat = Vec::new();
    for pad in ["reflect", "repeat"] {
        let out = dir.path().join(format!("{pad}.safetensors"));
        ok_json(&cpu(
            "encode",
            &tiny(),
            s(&six),
            s(&out),
            s(&cache),
            &["--pad", pad],
        ));
        let (shape, v) = read_f64(&out, "latent");
        assert_eq!(shape, vec![1, 16, 3, 4, 6]);
        lat.push(v);
    }
    let plane = 4 * 6;
    let frame = |v: &Vec<f64>, ti: usize| -> Vec<f64> {
        (0..16)
            .flat_map(|c| v[(c * 3 + ti) * plane..(c * 3 + ti + 1) * plane].to_vec())
            .collect()
    };
    assert_eq!(frame(&lat[0], 1), frame(&lat[1], 1));
    assert!(max_abs_diff(&frame(&lat[0], 2), &frame(&lat[1], 2)) > 1e-4);
}

#[test]
fn decodes_with_the_network_namespace_cut_off() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let latent = fixture("vae_tiny/latent_t2_8x8.safetensors");
    let out = dir.path().join("frames");
    let exe = env!("CARGO_BIN_EXE_seedvae");
    // A new network namespace has only a down loopback: nothing can be reached. As root that is
    // `unshare -n`; otherwise a user namespace maps us to root first (`-r`).
    let mut tried = Vec::new();
    for flags in [&["-n"][..], &["-r", "-n"][..]] {
        let o = std::process::Command::new("unshare")
            .args(flags)
            .arg(exe)
            .args([
                "decode",
                "-m",
                &tiny(),
                s(&latent),
                "-o",
                s(&out),
                "--backend",
                "auto",
                "--quiet",
                "--cache",
            ])
            .arg(dir.path().join("cache"))
            .env(
                "SEEDVAE_ORT_LIB",
                seedvae_runner::onnxruntime_library(None).unwrap(),
            )
            .output()
            .expect("unshare (util-linux) is installed");
        if o.status.success() {
            assert_eq!(super::common::frames(&out).len(), 5);
            return;
        }
        tried.push(format!(
            "unshare {flags:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    panic!(
        "could not decode in a network namespace:\n{}",
        tried.join("\n")
    );
}

#[test]
fn ctrl_c_stops_at_the_next_chunk_and_leaves_nothing() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let latent = dir.path().join("long.safetensors");
    write_latent(&latent, &random_latent(40, 16, 16, 5));
    let out = dir.path().join("frames");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_seedvae"))
        .args(cpu(
            "decode",
            &tiny(),
            s(&latent),
            s(&out),
            s(&dir.path().join("cache")),
            &["--quiet"],
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until frames are being written into the hidden temporary directory.
    let started = std::time::Instant::now();
    let writing = || {
        sorted_entries(dir.path()).iter().any(|p| {
            p.to_string_lossy().contains(".frames.seedvae-tmp") && !sorted_entries(p).is_empty()
        })
    };
    while !writing() {
        assert!(
            started.elapsed().as_secs() < 120,
            "decode did not start writing"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "decode ended before Ctrl-C"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "finished despite Ctrl-C: {err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.exists(), "partial output left");
    let left: Vec<_> = sorted_entries(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("seedvae-tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn tiled_encoding_blends_latent_tiles() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // A smooth 5-frame 96 × 128 clip in [-1, 1].
    let (t, h, w) = (5, 96, 128);
    let v: Vec<f32> = (0..3 * t * h * w)
        .map(|i| {
            let (x, y, c) = (i % w, (i / w) % h, i / (w * h * t));
            (0.6 * ((x as f32) * 0.05 + c as f32).sin() * ((y as f32) * 0.04).cos())
                .clamp(-1.0, 1.0)
        })
        .collect();
    let video = dir.path().join("v.safetensors");
    seedvae_runner::write_tensor(
        &video,
        "video",
        &Tensor::f32(vec![1, 3, t, h, w], v).unwrap(),
        seedvae_weights::DType::F32,
        true,
    )
    .unwrap();
    let w8 = tiny();
    let run = |extra: &[&str], name: &str| -> (Vec<f64>, serde_json::Value) {
        let o = dir.path().join(name);
        let j = ok_json(&cpu("encode", &w8, s(&video), s(&o), s(&cache), extra));
        (read_f64(&o, "latent").1, j)
    };
    let (whole, j0) = run(&[], "whole.safetensors");
    assert_eq!(j0["tiles"], 1);
    // 64 px tiles, 32 px overlap: latent 12 × 16 in tiles of 8 with overlap 4 → 2 × 3.
    let (tiled, j) = run(
        &["--tile-size", "64", "--tile-overlap", "32"],
        "tiled.safetensors",
    );
    assert_eq!(j["tiles"], 6, "{j}");
    assert_eq!(tiled.len(), whole.len());
    let mean = tiled
        .iter()
        .zip(&whole)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / whole.len() as f64;
    let rms = (whole.iter().map(|x| x * x).sum::<f64>() / whole.len() as f64).sqrt();
    let max = max_abs_diff(&tiled, &whole);
    eprintln!("encode tiled vs untiled: mean |Δ| {mean:.4} (latent RMS {rms:.3}), max {max:.3}");
    // Random weights at 64 px tiles: GroupNorm sees very different statistics per tile (spec §9),
    // so only a loose bound on the difference; the seam test is the point.
    assert!(mean < rms && max.is_finite(), "{mean} vs {rms}");
    // Tiles start at latent x 4, 8 and end at 8, 12: jumps there vs elsewhere.
    let planes = 16 * 2;
    let borders = [4usize, 8, 12];
    let interior: Vec<usize> = (1..16).filter(|x| !borders.contains(x)).collect();
    let (jb, ji) = (
        column_jump(&tiled, planes, 12, 16, &borders),
        column_jump(&tiled, planes, 12, 16, &interior),
    );
    eprintln!(
        "latent |jump| across tile borders {jb:.4}, elsewhere {ji:.4} (ratio {:.2})",
        jb / ji
    );
    assert!(jb <= 2.0 * ji, "seam in the latent: {jb} vs {ji}");
}

/// `--color-fix`: the decoded frames take the reference clip's colours (adain: each frame's
/// channel means and deviations become the reference's), a reference of another size is
/// resized, the lab default runs, and the flags' misuse is refused with nothing written.
#[test]
fn color_correction_round_trip() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let latent = fixture("vae_tiny/latent_t2_8x8.safetensors");
    let w8 = tiny();
    let plain = dir.path().join("plain.safetensors");
    ok_json(&cpu("decode", &w8, s(&latent), s(&plain), s(&cache), &[]));
    let (shape, v) = read_f64(&plain, "video");
    assert_eq!(shape, vec![1, 3, 5, 64, 64]);
    // The reference: the same frames with another tone per channel.
    let tone = [(0.5, 0.2), (0.8, -0.1), (0.3, 0.05)];
    let plane = 5 * 64 * 64;
    let reference: Vec<f32> = v
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let (a, b) = tone[i / plane];
            (a * x + b).clamp(-1.0, 1.0) as f32
        })
        .collect();
    let refp = dir.path().join("ref.safetensors");
    seedvae::write_tensor(
        &refp,
        "video",
        &Tensor::f32(shape.clone(), reference.clone()).unwrap(),
        seedvae::DType::F32,
        true,
    )
    .unwrap();
    let fixed = dir.path().join("adain.safetensors");
    ok_json(&cpu(
        "decode",
        &w8,
        s(&latent),
        s(&fixed),
        s(&cache),
        &["--color-fix", "adain", "--color-ref", s(&refp)],
    ));
    let (_, got) = read_f64(&fixed, "video");
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (
            m,
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt(),
        )
    };
    for c in 0..3 {
        for f in 0..5 {
            let r = (c * 5 + f) * 4096..(c * 5 + f + 1) * 4096;
            let want: Vec<f64> = reference[r.clone()].iter().map(|&x| x as f64).collect();
            let ((gm, gs), (wm, ws)) = (stats(&got[r]), stats(&want));
            assert!(
                (gm - wm).abs() < 1e-4 && (gs - ws).abs() < 1e-3,
                "c{c} f{f}: {gm} {gs} vs {wm} {ws}"
            );
        }
    }
    // The node's default method, against a reference of another size (resized), in batches of 2.
    let small = dir.path().join("small.safetensors");
    let s16: Vec<f32> = (0..3 * 5 * 32 * 32)
        .map(|i| ((i % 97) as f32 / 97.0) * 1.6 - 0.8)
        .collect();
    seedvae::write_tensor(
        &small,
        "video",
        &Tensor::f32(vec![1, 3, 5, 32, 32], s16).unwrap(),
        seedvae::DType::F32,
        true,
    )
    .unwrap();
    let lab = dir.path().join("lab.safetensors");
    ok_json(&cpu(
        "decode",
        &w8,
        s(&latent),
        s(&lab),
        s(&cache),
        &[
            "--color-fix",
            "lab",
            "--color-ref",
            s(&small),
            "--color-batch",
            "2",
        ],
    ));
    let (_, l) = read_f64(&lab, "video");
    assert!(l.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    assert!(max_abs_diff(&l, &v) > 1e-2, "lab changed nothing");
    // Misuse: no reference; a zero batch; the output as its own reference.
    let out = dir.path().join("bad.safetensors");
    let m = fails(
        &cpu(
            "decode",
            &w8,
            s(&latent),
            s(&out),
            s(&cache),
            &["--color-fix", "lab"],
        ),
        &out,
    );
    assert!(m.contains("--color-ref"), "{m}");
    let m = fails(
        &cpu(
            "decode",
            &w8,
            s(&latent),
            s(&out),
            s(&cache),
            &[
                "--color-fix",
                "hsv",
                "--color-ref",
                s(&refp),
                "--color-batch",
                "0",
            ],
        ),
        &out,
    );
    assert!(m.contains("--color-batch"), "{m}");
    let m = fails(
        &cpu(
            "decode",
            &w8,
            s(&latent),
            s(&refp),
            s(&cache),
            &["--color-fix", "hsv", "--color-ref", s(&refp), "--force"],
        ),
        &dir.path().join("never"),
    );
    assert!(m.contains("ref.safetensors"), "{m}");
}

/// `seedvae backends` says which backend can run here and why the others cannot, in auto's
/// order, as a table and as JSON, without opening a model: the CPU runs anywhere; a GPU backend
/// names its GPU or says why not, in the CLI's words.
#[test]
fn backends_says_what_runs_here_and_why_not() {
    let _machine = super::common::sharing();
    let (code, out, err) = seedvae(&["backends", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backend"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tensorrt-rtx",
            "seedvae-cuda",
            "onnxruntime-cuda",
            "onnxruntime-cpu"
        ]
    );
    assert!(list[3]["unavailable"].is_null(), "{out}");
    for gpu in &list.as_array().unwrap()[..3] {
        match gpu["unavailable"].as_str() {
            None => assert!(gpu["gpu"]["name"].is_string(), "{out}"),
            Some(why) => assert!(!why.is_empty() && !why.contains("`install_cuda`"), "{out}"),
        }
    }
    let (code, table, _) = seedvae(&["backends"]);
    assert_eq!(code, 0);
    assert!(
        table.lines().count() == 4 && table.contains("onnxruntime-cpu   yes"),
        "{table}"
    );
}

/// On seedvae's executor `--tile-size` is a band height, not a tile: a 24×24 latent (192 px
/// frames) decoded in bands of 64 px gives what whole frames (`--no-tiling`) give, within 1e-5
/// — and so does the encoder on its 192 px frames.
#[test]
fn the_executors_bands_equal_whole_frames() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let tiny_path = tiny();
    let latent = dir.path().join("latent.safetensors");
    super::common::write_latent(&latent, &super::common::random_latent(2, 24, 24, 7));
    let run = |cmd: &str, input: &Path, name: &str, cut: &[&str]| {
        let out = dir.path().join(name);
        let mut a = vec![cmd, "-m", &tiny_path, s(input), "-o", s(&out)];
        a.extend_from_slice(&["--backend", "reference"]);
        a.extend_from_slice(cut);
        ok_json(&a);
        out
    };
    let whole = run("decode", &latent, "whole.safetensors", &["--no-tiling"]);
    let banded = run(
        "decode",
        &latent,
        "bands.safetensors",
        &["--tile-size", "64"],
    );
    let (ws, w) = read_f64(&whole, "video");
    let (bs, b) = read_f64(&banded, "video");
    assert_eq!(
        (ws.as_slice(), bs.as_slice()),
        ([1, 3, 5, 192, 192].as_slice(), ws.as_slice())
    );
    let e = rel_l2(&b, &w);
    eprintln!("reference decode 192 px, bands of 64 px vs whole frames: {e:.2e}");
    assert!(e <= 1e-5, "{e}");
    // The decoded frames, held to [-1, 1], as the encoder's input.
    let video = dir.path().join("video.safetensors");
    let clamped: Vec<f32> = w.iter().map(|&v| v.clamp(-1.0, 1.0) as f32).collect();
    let t = seedvae::Tensor::f32(ws.clone(), clamped).unwrap();
    seedvae::write_tensor(&video, "video", &t, seedvae::DType::F32, true).unwrap();
    let whole_mean = run("encode", &video, "whole_mean.safetensors", &["--no-tiling"]);
    let banded_mean = run(
        "encode",
        &video,
        "bands_mean.safetensors",
        &["--tile-size", "64"],
    );
    let e = rel_l2(
        &read_f64(&banded_mean, "latent").1,
        &read_f64(&whole_mean, "latent").1,
    );
    eprintln!("reference encode 192 px, bands of 64 px vs whole frames: {e:.2e}");
    assert!(e <= 1e-5, "{e}");
}

/// `--backend reference`: seedvae's own executor on its plain-Rust device decodes and encodes
/// the fixture to the original module's fp64 goldens, streamed in chunks, from the weights; an
/// ONNX graph is refused with what it runs instead.
#[test]
fn the_reference_executor_reproduces_the_goldens() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let tiny_path = tiny();
    let reference = |cmd, input: &Path, out: &Path, extra: &[&str]| {
        let mut a = vec![
            cmd,
            "-m",
            &tiny_path,
            s(input),
            "-o",
            s(out),
            "--backend",
            "reference",
            "--cache",
            s(&cache),
        ];
        a.extend_from_slice(extra);
        ok_json(&a)
    };
    for case in ["t3_8x8", "t2_6x10"] {
        let latent = fixture(&format!("vae_tiny/latent_{case}.safetensors"));
        let (gs, g, lim, _) = decoded_golden(case);
        let out = dir.path().join(format!("{case}.safetensors"));
        let j = reference("decode", &latent, &out, &["--chunk", "1"]);
        assert_eq!(j["backend"], "reference");
        let (shape, v) = read_f64(&out, "video");
        assert_eq!(shape, gs, "{case}");
        let e = rel_l2(&v, &g);
        eprintln!(
            "reference decode {case}: rel L2 {e:.2e}, {} chunk(s)",
            j["chunks"]
        );
        assert!(e <= lim, "{case}: {e}");
    }
    let video = fixture("vae_tiny/video_t9_32x48.safetensors");
    let (_, mean64) = read_f64(
        &fixture("vae_tiny/encoded_t9_32x48.safetensors"),
        "latent_mean_f64",
    );
    let out = dir.path().join("mean.safetensors");
    let j = reference("encode", &video, &out, &["--chunk", "1"]);
    let (shape, v) = read_f64(&out, "latent");
    assert_eq!(shape, vec![1, 16, 3, 4, 6]);
    let e = rel_l2(&v, &mean64);
    eprintln!("reference encode: rel L2 {e:.2e} ({} calls)", j["calls"]);
    assert!(e <= 1e-5, "{e}");
    // An ONNX graph is not what the executor runs: said, with what to give instead.
    let onnx = dir.path().join("dec.onnx");
    assert_eq!(
        seedvae(&["convert", &tiny_path, "-o", s(&onnx), "--part", "decoder"]).0,
        0
    );
    let latent = fixture("vae_tiny/latent_t1_8x8.safetensors");
    let bad = dir.path().join("bad.safetensors");
    let (code, out, err) = seedvae(&[
        "decode",
        "-m",
        s(&onnx),
        s(&latent),
        "-o",
        s(&bad),
        "--backend",
        "reference",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("runs the weights") && err.contains("--model"),
        "{err}"
    );
    assert!(!bad.exists());
}
