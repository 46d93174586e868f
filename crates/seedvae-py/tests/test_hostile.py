"""Issue 22 ("nothing lost, nothing hung, round 2") from Python: re-entrant calls from a progress
callback, close from a callback, inputs that cannot be meant (dtypes, values), memory too small
for an output (MemoryError, never an abort), messages naming keywords, and a fuzz of the
decode/encode inputs. Run by scripts/test.sh (the "python" tier) in the test venv."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import seedvae
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT.parent / "shared" / "fixtures" / "vae_tiny"
WEIGHTS = FIX / "weights.safetensors"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def decoder(cache):
    return seedvae.Model(WEIGHTS, "decoder", "cpu", cache=cache)


@pytest.fixture(scope="module")
def encoder(cache):
    return seedvae.Model(WEIGHTS, "encoder", "cpu", cache=cache)


def latent(t=2, h=4, w=4, seed=0):
    return np.random.default_rng(seed).standard_normal((1, 16, t, h, w)).astype(np.float32)


def test_a_callback_calling_its_own_model_gets_an_error_at_once(decoder):
    raised = []

    def again(e):
        if e.kind == "frames" and not raised:
            try:
                decoder.decode(latent(1))
            except RuntimeError as err:
                raised.append(err)

    start = time.monotonic()
    decoder.decode(latent(3), chunk=1, progress=again)
    assert time.monotonic() - start < 60
    assert raised and "its own progress callback" in str(raised[0])
    assert decoder.decode(latent(1)).shape == (1, 3, 1, 32, 32)


def test_close_from_a_callback_takes_effect_after_the_run(cache):
    m = seedvae.Model(WEIGHTS, "decoder", "cpu", cache=cache)

    def close(e):
        if e.kind == "frames":
            m.close()

    video = m.decode(latent(3), chunk=1, progress=close)
    assert video.shape == (1, 3, 9, 32, 32)  # the run in progress finished
    with pytest.raises(seedvae.SeedvaeError, match="closed"):
        m.decode(latent(1))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 16, 1, 4, 4), np.int64),
        np.zeros((1, 16, 1, 4, 4), bool),
        np.zeros((1, 16, 1, 4, 4), np.complex64),
        np.zeros((1, 16, 1, 4, 4), object),
        np.zeros((1, 16, 1, 4, 4), np.uint8),
    ],
    ids=["int64", "bool", "complex", "object", "uint8"],
)
def test_decode_refuses_what_cannot_be_a_latent(decoder, bad):
    with pytest.raises(seedvae.InvalidInputError, match=f"latent: dtype {bad.dtype}"):
        decoder.decode(bad)


def test_none_is_named(decoder, encoder):
    with pytest.raises(seedvae.InvalidInputError, match="latent: expected an array.*found None"):
        decoder.decode(None)
    with pytest.raises(seedvae.InvalidInputError, match="frames: expected an array.*found None"):
        encoder.encode(None)


def test_encode_takes_uint8_frames_as_levels_and_refuses_levels_as_floats(encoder):
    levels = np.random.default_rng(1).integers(0, 256, (1, 3, 5, 16, 16), dtype=np.uint8)
    as_levels = encoder.encode(levels)
    as_frames = encoder.encode(levels.astype(np.float32) / 127.5 - 1)
    np.testing.assert_allclose(as_levels, as_frames, rtol=0, atol=1e-6)
    with pytest.raises(seedvae.InvalidInputError, match=r"values up to 255.*x / 127.5 - 1"):
        encoder.encode(levels.astype(np.float32))
    with pytest.raises(seedvae.InvalidInputError, match="frames: dtype int32"):
        encoder.encode(levels.astype(np.int32))


def test_colour_correction_refuses_nan_in_the_video_and_huge_references():
    v = np.zeros((1, 3, 2, 8, 8), np.float32)
    r = np.zeros((1, 3, 2, 8, 8), np.float32)
    v[0, 1, 1, 2, 3] = np.nan
    with pytest.raises(seedvae.InvalidInputError, match="the video to colour-correct' holds 1 NaN"):
        seedvae.correct_colors(v, r, "adain")
    with pytest.raises(seedvae.InvalidInputError, match="colour reference holds values up to"):
        seedvae.correct_colors(np.zeros_like(r), r + 1e6, "adain")


def test_errors_name_keywords_not_cli_flags(decoder, cache):
    for kwargs, keyword in [({"tile": 7}, "tile=7"), ({"chunk": 0}, "chunk=0"),
                            ({"overlap": 9}, "overlap=9")]:
        with pytest.raises(seedvae.InvalidInputError) as e:
            decoder.decode(latent(1), **kwargs)
        assert keyword in str(e.value) and "--" not in str(e.value), str(e.value)


def test_an_output_too_large_for_memory_is_a_memory_error_not_an_abort(tmp_path):
    """[1, 16, 2, 2048, 2048] decodes to 16 GB: under a 3 GB address-space limit, in a child
    interpreter, the call raises MemoryError and the interpreter lives on."""
    script = textwrap.dedent(f"""
        import resource, numpy as np, seedvae
        m = seedvae.Model({str(WEIGHTS)!r}, "decoder", "cpu", cache={str(tmp_path / "c")!r})
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        try:
            m.decode(np.zeros((1, 16, 2, 2048, 2048), np.float16))
        except MemoryError as e:
            print("MemoryError:", e)
        m.close()
        print("alive")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "MemoryError: the decoded video (5 frames of 16384×16384" in r.stdout, r.stdout + r.stderr
    assert "alive" in r.stdout


def test_fuzz_decode_and_encode_inputs(decoder, encoder):
    """Random dtypes, ranks, shapes, strides and values for 60 s (SEEDVAE_FUZZ_SECONDS): every
    call returns or raises a seedvae or Python error; none crashes or hangs."""
    rng = np.random.default_rng(int(os.environ.get("SEEDVAE_FUZZ_SEED", "22")))
    seconds = float(os.environ.get("SEEDVAE_FUZZ_SECONDS", "60"))
    dtypes = [np.float32, np.float16, np.float64, np.int8, np.uint8, np.int64, bool, np.complex64, object]
    end, calls, outcomes = time.monotonic() + seconds, 0, {}
    while time.monotonic() < end:
        model, kind = (decoder, "latent") if rng.random() < 0.5 else (encoder, "frames")
        rank = int(rng.integers(0, 7))
        shape = [int(rng.choice([0, 1, 2, 3, 5, 8, 16, 17])) for _ in range(rank)]
        if rank == 5 and rng.random() < 0.6:  # near-valid shapes more often
            shape[:2] = [1, 16 if kind == "latent" else 3]
            shape[3:] = [int(rng.choice([1, 2, 4, 8])) * (1 if kind == "latent" else 8)] * 2
        if int(np.prod(shape)) > 200_000:
            continue
        dtype = dtypes[int(rng.integers(len(dtypes)))]
        with np.errstate(all="ignore"):  # 1e30 in float16 is inf: meant
            x = (rng.standard_normal(shape) * float(rng.choice([0.5, 1, 300, 1e30]))).astype(dtype) \
                if dtype is not object else np.empty(shape, object)
        if x.size and rng.random() < 0.1:
            x.flat[int(rng.integers(x.size))] = np.nan if x.dtype.kind == "f" else 0
        if x.ndim and rng.random() < 0.3:
            x = x[..., ::-1]  # a negative stride
        kwargs = {}
        if rng.random() < 0.3:
            kwargs = {"tile": int(rng.choice([0, 7, 64, 128])), "chunk": int(rng.choice([0, 1, 2]))}
        try:
            (model.decode if kind == "latent" else model.encode)(x, **kwargs)
            outcome = "ok"
        except (seedvae.SeedvaeError, ValueError, TypeError, OverflowError, MemoryError) as e:
            outcome = type(e).__name__
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        calls += 1
    assert calls > 20, outcomes
    assert outcomes.get("ok", 0) > 0 and outcomes.get("InvalidInputError", 0) > 0, outcomes
