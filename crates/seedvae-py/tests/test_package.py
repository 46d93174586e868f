"""The Python package against the tiny fixture's PyTorch goldens, from numpy and torch; shapes
changing between calls; cancellation (token, callback exception, Ctrl-C); errors with the CLI's
messages. Run by scripts/test.sh (the "python" tier) in the test venv, which has torch."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import seedvae
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT.parent / "shared" / "fixtures" / "vae_tiny"
WEIGHTS = FIX / "weights.safetensors"


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def golden(case):
    d = load_file(FIX / f"decoded_{case}.safetensors")
    return d.get("decoded_f64", d["decoded"])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def decoder(cache):
    return seedvae.Model(WEIGHTS, "decoder", "cpu", cache=cache)


@pytest.fixture(scope="module")
def encoder(cache):
    return seedvae.Model(WEIGHTS, "encoder", "cpu", cache=cache)


def test_decode_reproduces_the_goldens_from_numpy_with_shapes_changing(decoder):
    assert decoder.backend == "onnxruntime-cpu" and decoder.part == "decoder"
    for case in ["t3_8x8", "t2_6x10", "t1_8x8", "t2_8x8"]:
        latent = load_file(FIX / f"latent_{case}.safetensors")["latent"]
        video = decoder.decode(latent)
        g = golden(case)
        assert isinstance(video, np.ndarray) and video.dtype == np.float32
        assert video.shape == g.shape
        assert rel_l2(video, g) <= 1e-5, case
        assert decoder.last_report["frames"] == g.shape[2]


def test_decode_takes_the_other_latent_layouts_and_dtypes(decoder):
    latent = load_file(FIX / "latent_t2_8x8.safetensors")["latent"]
    full = decoder.decode(latent)
    np.testing.assert_array_equal(decoder.decode(latent[0]), full)  # [16, T, h, w]
    one = load_file(FIX / "latent_t1_8x8.safetensors")["latent"]
    np.testing.assert_array_equal(decoder.decode(one[:, :, 0]), decoder.decode(one))  # [1, 16, h, w]
    # float64 and a non-contiguous view are converted, not refused.
    f64 = np.asfortranarray(latent.astype(np.float64))
    assert rel_l2(decoder.decode(f64), full) < 1e-6


def test_torch_cpu_tensors_in_and_out():
    torch = pytest.importorskip("torch")
    dec = seedvae.Model(WEIGHTS, "decoder", "cpu")
    latent = torch.from_numpy(load_file(FIX / "latent_t2_6x10.safetensors")["latent"])
    video = dec.decode(latent)
    assert isinstance(video, torch.Tensor) and video.device.type == "cpu"
    assert rel_l2(video.numpy(), golden("t2_6x10")) <= 1e-5
    # bf16 and a transposed view go through DLPack after a conversion.
    v2 = dec.decode(latent.to(torch.bfloat16).float().transpose(3, 4).contiguous().transpose(3, 4))
    assert rel_l2(v2.numpy(), golden("t2_6x10")) < 2e-2


def test_encode_reproduces_the_goldens_from_numpy_and_torch(encoder):
    video = load_file(FIX / "video_t9_32x48.safetensors")["video"]
    want = load_file(FIX / "encoded_t9_32x48.safetensors")["latent_mean_f64"]
    mean = encoder.encode(video)
    assert mean.shape == want.shape and rel_l2(mean, want) <= 1e-5
    torch = pytest.importorskip("torch")
    t = encoder.encode(torch.from_numpy(video))
    assert isinstance(t, torch.Tensor) and rel_l2(t.numpy(), want) <= 1e-5
    # A different shape next: 5 frames of 32 x 32.
    assert encoder.encode(video[:, :, :5, :, :32]).shape == (1, 16, 2, 4, 4)


def test_progress_reports_frames_and_a_cancel_stops_the_run(decoder):
    latent = load_file(FIX / "latent_t3_8x8.safetensors")["latent"]
    seen = []
    decoder.decode(latent, chunk=1, progress=seen.append)
    frames = [e for e in seen if e.kind == "frames"]
    assert [e.done for e in frames] == [1, 5, 9] and frames[-1].total == 9

    token = seedvae.CancelToken()

    def stop(e):
        if e.kind == "frames":
            token.cancel()

    with pytest.raises(seedvae.CancelledError, match="interrupted"):
        decoder.decode(latent, chunk=1, progress=stop, cancel=token)
    assert token.cancelled

    class Boom(Exception):
        pass

    def fail(e):
        raise Boom("from the callback")

    with pytest.raises(Boom):
        decoder.decode(latent, chunk=1, progress=fail)
    # The model still works after both.
    assert rel_l2(decoder.decode(latent), golden("t3_8x8")) <= 1e-5


def test_ctrl_c_stops_a_run_at_the_next_chunk(decoder):
    # A long clip, one latent frame per call: SIGINT arrives during the run.
    # The signal is sent from another thread 50 ms after the first frames arrive (a fixed
    # delay from the start raced a fast machine to the end of the clip).
    latent = np.random.default_rng(0).standard_normal((1, 16, 120, 16, 16)).astype(np.float32)
    seen = []
    timer = threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGINT))

    def progress(e):
        seen.append(e)
        if e.kind == "frames" and not timer.is_alive() and not timer.finished.is_set():
            timer.start()

    # Python's own Ctrl-C handler, whatever started this process (a shell's background job
    # starts with SIGINT ignored, and Python then leaves it so).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            decoder.decode(latent, chunk=1, progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    took = time.monotonic() - start
    timer.join()
    done = max(e.done for e in seen if e.kind == "frames")
    assert done < 4 * 120 - 3, "the run went to the end"
    assert took < 30, took
    # Usable afterwards.
    assert decoder.decode(latent[:, :, :1]).shape == (1, 3, 1, 128, 128)


def cli_message(args):
    """The CLI's stderr for a failing command, `error: ` taken off."""
    exe = os.environ.get("SEEDVAE_BIN") or str(ROOT / "target" / "debug" / "seedvae")
    r = subprocess.run([exe, *args], capture_output=True, text=True)
    assert r.returncode != 0, r
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), r.stderr
    return line[len("error: "):]


def test_bad_inputs_raise_with_the_clis_messages(decoder, tmp_path):
    bad = np.zeros((1, 16, 2, 3), np.float32)[:, :, None]  # [1, 16, 1, 2, 3] is fine: ...
    nan = load_file(FIX / "latent_t1_8x8.safetensors")["latent"].copy()
    nan[0, 3, 0, 2, 1] = np.nan
    wrong = np.zeros((1, 8, 1, 4, 4), np.float32)
    for arr in [nan, wrong]:
        path = tmp_path / "latent.npy"
        np.save(path, arr)
        with pytest.raises(seedvae.InvalidInputError) as e:
            decoder.decode(arr)
        cli = cli_message(["decode", str(path), "-o", str(tmp_path / "out.npy"),
                           "--model", str(WEIGHTS), "--backend", "cpu",
                           "--cache", str(tmp_path / "c")])
        # The CLI names the file first; the rest is the same message.
        assert cli == f"{path}: {e.value}", (cli, str(e.value))
    assert decoder.decode(bad).shape == (1, 3, 1, 16, 24)
    with pytest.raises(ValueError, match="choose one of"):
        seedvae.Model(WEIGHTS, "decoder", "gpu")
    with pytest.raises(seedvae.SeedvaeError, match="missing.safetensors"):
        seedvae.Model(FIX / "missing.safetensors", "decoder", "cpu")
    with pytest.raises(seedvae.InvalidInputError, match="multiples of 8|multiple of 8"):
        seedvae.Model(WEIGHTS, "encoder", "cpu").encode(np.zeros((1, 3, 1, 30, 32), np.float32))


def test_colour_correction_through_the_package(decoder):
    latent = load_file(FIX / "latent_t2_8x8.safetensors")["latent"]
    video = decoder.decode(latent)
    ref = np.clip(video * 0.5 + 0.2, -1, 1)[:, :, :, ::2, ::2].copy()  # smaller, other colours
    for method in ["lab", "wavelet", "adain", "hsv", "wavelet_adaptive"]:
        fixed = decoder.decode(latent, color_fix=method, color_reference=ref)
        assert fixed.shape == video.shape
        np.testing.assert_array_equal(fixed, seedvae.correct_colors(video, ref, method))
        assert not np.array_equal(fixed, video)
    assert np.array_equal(decoder.decode(latent, color_fix="none"), video)
    with pytest.raises(seedvae.InvalidInputError):
        decoder.decode(latent, color_fix="lab")
    with pytest.raises(ValueError):
        decoder.decode(latent, color_fix="sepia", color_reference=ref)


def test_the_type_stubs_match_the_native_module():
    import ast
    import inspect

    from seedvae import _seedvae

    stub = ast.parse((Path(seedvae.__file__).parent / "_seedvae.pyi").read_text())

    def params(fn: ast.FunctionDef):
        a = fn.args
        names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
        return [n for n in names if n != "self"]

    checked = 0
    for node in stub.body:
        if isinstance(node, ast.FunctionDef):
            assert params(node) == list(inspect.signature(getattr(_seedvae, node.name)).parameters), node.name
            checked += 1
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_seedvae, node.name)
            for fn in node.body:
                if isinstance(fn, ast.FunctionDef) and not any(
                    isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list
                ):
                    target = cls if fn.name == "__init__" else getattr(cls, fn.name)
                    got = [p for p in inspect.signature(target).parameters if p != "self"]
                    assert params(fn) == got, (node.name, fn.name, got)
                    checked += 1
                elif isinstance(fn, ast.FunctionDef):
                    assert hasattr(cls, fn.name), (node.name, fn.name)
    assert checked >= 6


def test_engines_are_built_once_with_progress_then_found(tmp_path):
    # TensorRT-RTX builds for sm_120 on any machine (no GPU); the tiny fp16 engine is quick.
    events = []
    got = seedvae.ensure_engine(WEIGHTS, precision="fp16", targets=["sm_120"], cache=tmp_path,
                                progress=events.append)
    assert got["outcome"] == "built" and Path(got["engine"]).is_file()
    stages = [e.text for e in events if e.kind == "stage"]
    assert any("build" in s.lower() for s in stages), stages
    again = seedvae.ensure_engine(WEIGHTS, precision="fp16", targets=["sm_120"], cache=tmp_path)
    assert again["outcome"] == "hit" and again["key"] == got["key"]
    with pytest.raises(seedvae.SeedvaeError, match="sm_12"):
        seedvae.ensure_engine(WEIGHTS, targets=["sm_12"], cache=tmp_path)
    # Opening the engine here has no RTX GPU to run on: the reason, as an exception.
    with pytest.raises(seedvae.UnavailableError):
        seedvae.Model(got["key"], "decoder", "tensorrt", cache=tmp_path)


def test_the_gil_is_released_while_a_run_works(cache):
    dec = seedvae.Model(WEIGHTS, "decoder", "cpu", cache=cache, threads=1)
    latent = np.random.default_rng(1).standard_normal((1, 16, 8, 16, 16)).astype(np.float32)

    def count(seconds):
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
        return n

    alone = count(0.5)
    done = []
    worker = threading.Thread(target=lambda: done.append(dec.decode(latent, chunk=1)))
    worker.start()
    time.sleep(0.2)
    during = count(0.5)  # pure Python: runs only while the decode has let the GIL go
    assert worker.is_alive(), "the decode finished too soon to tell"
    worker.join()
    assert done and done[0].shape == (1, 3, 29, 128, 128)
    assert during > 0.2 * alone, (during, alone)


def test_a_closed_model_refuses_runs(cache):
    latent = load_file(FIX / "latent_t1_8x8.safetensors")["latent"]
    with seedvae.Model(WEIGHTS, "decoder", "cpu", cache=cache) as m:
        assert m.decode(latent).shape == (1, 3, 1, 64, 64)
    with pytest.raises(seedvae.SeedvaeError, match="closed"):
        m.decode(latent)
    m.close()  # twice is fine


def test_backends_says_what_runs_here_and_why_not():
    """``seedvae.backends()`` lists auto's order without opening a model: the CPU runs anywhere;
    a GPU backend names its GPU, or says why it cannot run, in Python's words."""
    got = seedvae.backends()
    assert [b["backend"] for b in got] == [
        "tensorrt-rtx",
        "seedvae-cuda",
        "onnxruntime-cuda",
        "onnxruntime-cpu",
    ]
    assert got[3]["unavailable"] is None
    for b in got[:3]:
        if b["unavailable"] is None:
            assert b["gpu"]["name"] and b["gpu"]["total_bytes"] > 0, b
        else:
            assert "`install_cuda`" not in b["unavailable"] and b["gpu"] is None, b


def test_device_need_is_none_on_the_cpu_and_refuses_a_bad_shape(decoder, encoder):
    """``Model.device_need`` (what a host application frees on the GPU before a run) has nothing
    to say on the CPU, and names the shape it wants."""
    assert decoder.device_need([1, 16, 3, 8, 8]) is None
    assert encoder.device_need((1, 3, 9, 32, 48)) is None
    with pytest.raises(ValueError, match=r"\[1, C, T, H, W\]"):
        decoder.device_need([16, 3, 8, 8])
    with pytest.raises(seedvae.InvalidInputError, match="expected"):
        decoder._m.device_need([2, 16, 3, 8, 8])


def test_the_librarys_log_lines_come_through_pythons_logging(cache, caplog):
    """What the CLI prints on stderr reaches Python's ``logging`` (logger "seedvae"), handed over
    by the waiting thread: here the executor saying it runs in bands (128 px frames, tile=64)."""
    import logging

    latent = np.random.default_rng(4).standard_normal((1, 16, 2, 16, 16)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="seedvae"):
        with seedvae.Model(WEIGHTS, "decoder", "reference", cache=cache) as m:
            banded = m.decode(latent, tile=64)
            whole = m.decode(latent)
    said = [r.getMessage() for r in caplog.records if r.name == "seedvae"]
    assert any("every layer in bands of 64 px" in s for s in said), said
    assert np.array_equal(banded, whole)


def test_tensors_handed_over_in_device_memory_run_in_place(cache):
    """The in-place path torch CUDA tensors take on seedvae's CUDA executor, driven here on the
    reference device (whose memory is the host's) with numpy buffers' addresses: the same values
    as the host path, the output written where it was given; a wrong output shape refused before
    anything is written; other backends refuse it. The wrapper keeps CPU tensors on the host
    path and says so in the report."""
    rng = np.random.default_rng(9)
    z = rng.standard_normal((1, 16, 3, 6, 10)).astype(np.float32)
    with seedvae.Model(WEIGHTS, "decoder", "reference", cache=cache) as m:
        want = m.decode(z)
        assert m.last_report["io"] == "host"
        out = np.full((1, 3, 9, 48, 80), np.nan, np.float32)
        seen = []
        report = m._m._run_device(
            z.ctypes.data, list(z.shape), out.ctypes.data, list(out.shape), chunk=1,
            progress=lambda kind, text, done, total: seen.append((kind, done, total)))
        assert np.abs(out - want).max() < 1e-6
        assert report["frames"] == 9 and report["chunks"] == 3
        assert ("frames", 9, 9) in seen, seen
        short = np.zeros((1, 3, 8, 48, 80), np.float32)
        with pytest.raises(seedvae.InvalidInputError, match="output tensor"):
            m._m._run_device(z.ctypes.data, list(z.shape), short.ctypes.data, list(short.shape))
        assert not short.any()
        with pytest.raises(seedvae.InvalidInputError, match=r"\[1, C, T, H, W\]"):
            m._m._run_device(z.ctypes.data, [16, 3, 6, 10], out.ctypes.data, list(out.shape))
    x = np.clip(rng.standard_normal((1, 3, 9, 16, 24)), -1, 1).astype(np.float32)
    with seedvae.Model(WEIGHTS, "encoder", "reference", cache=cache) as m:
        want = m.encode(x)
        mean = np.full((1, 16, 3, 2, 3), np.nan, np.float32)
        m._m._run_device(x.ctypes.data, list(x.shape), mean.ctypes.data, list(mean.shape))
        assert np.abs(mean - want).max() < 1e-6
    with seedvae.Model(WEIGHTS, "decoder", "cpu", cache=cache) as m:
        with pytest.raises(seedvae.InvalidInputError, match="seedvae's CUDA executor"):
            m._m._run_device(z.ctypes.data, list(z.shape), out.ctypes.data, list(out.shape))
    # What an in-place encode gathers to pad 7 frames to 9: the host path's padding.
    assert seedvae._seedvae._pad_sources(7, "reflect") == [0, 1, 2, 3, 4, 5, 6, 5, 4]
    assert seedvae._seedvae._pad_sources(7, "repeat") == [0, 1, 2, 3, 4, 5, 6, 6, 6]
    assert seedvae._seedvae._pad_sources(9, "reflect") == list(range(9))
