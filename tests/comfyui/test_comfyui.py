"""seedvae's node pack inside the shipped ComfyUI (../shared/thirdparty), on the CPU:

1. our decode and encode nodes against ComfyUI's own SeedVR2 VAE model on the same full-size
   random checkpoint (`seedvae synth`, with the `keep_diffusers_format` metadata ComfyUI users'
   files carry): decode ≤ 1e-3 max abs on [0, 1] images (its tiling off, its colour transfer not
   applied), encode ≤ 1e-4 relative L2;
2. ComfyUI started headless on loopback, the pack loaded as a custom node, and a load → encode →
   decode (colour-corrected) → save workflow run through its HTTP API, with progress reported
   over its websocket and an image saved.

Run by scripts/test.sh in the test venv (ComfyUI's requirements, pinned in
scripts/requirements-comfyui.txt, and the seedvae wheel)."""

import asyncio
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "integrations" / "comfyui"
ARCHIVE = ROOT.parent / "shared" / "thirdparty" / "ComfyUI-seedvr2-270e72f.tar.xz"
CHECKPOINT = "seedvr2_synth_fp16.safetensors"


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """The shipped ComfyUI unpacked, with the pack in custom_nodes and a full-size random
    SeedVR2 VAE in models/vae."""
    base = tmp_path_factory.mktemp("comfy")
    with tarfile.open(ARCHIVE) as t:
        t.extractall(base, filter="data")
    root = base / "ComfyUI-seedvr2"
    shutil.copytree(PACK, root / "custom_nodes" / "seedvae", ignore=shutil.ignore_patterns("__pycache__"))
    raw = base / "synth.safetensors"
    exe = os.environ.get("SEEDVAE_BIN") or str(ROOT / "target" / "debug" / "seedvae")
    subprocess.run([exe, "-q", "synth", "-o", str(raw), "--seed", "7"], check=True)
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(raw, "np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata() or {})
    meta["keep_diffusers_format"] = "true"
    save_file(tensors, root / "models" / "vae" / CHECKPOINT, metadata=meta)
    raw.unlink()
    return root


@pytest.fixture(scope="module")
def inproc(comfy):
    """ComfyUI's modules in this process (CPU, fp32) and our nodes module."""
    root = comfy
    sys.path.insert(0, str(root))
    from comfy.cli_args import args

    args.cpu = True
    args.force_fp32 = True
    spec = importlib.util.spec_from_file_location("seedvae_nodes", PACK / "nodes.py")
    nodes = importlib.util.module_from_spec(spec)
    sys.modules["seedvae_nodes"] = nodes  # dataclasses look their module up
    spec.loader.exec_module(nodes)
    import comfy.sd
    import comfy.utils
    import torch

    path = root / "models" / "vae" / CHECKPOINT
    sd, meta = comfy.utils.load_torch_file(str(path), return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)
    model = vae.first_stage_model.float().eval()
    ours = nodes.SeedVAE(str(path), "cpu")
    return nodes, model, ours, torch


def smooth_frames(torch, t, h, w, seed):
    """Frames a camera could take: smooth colour fields with some detail, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(t, 3, max(h // 16, 2), max(w // 16, 2), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False)
    img = img + 0.05 * torch.randn(t, 3, h, w, generator=g)
    return img.clamp(0, 1).permute(0, 2, 3, 1).contiguous()  # IMAGE [T, H, W, 3]


def test_decode_matches_comfyuis_seedvr2_vae(inproc):
    nodes, model, ours, torch = inproc
    g = torch.Generator().manual_seed(3)
    z = torch.randn(1, 16, 2, 8, 8, generator=g)  # VAE space: 5 frames of 64 x 64
    with torch.no_grad():
        theirs = model.decode_(z)  # VideoAutoencoderKL: no tiling, no colour transfer
    want = ((theirs + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1)[0]  # [5, 64, 64, 3]
    # The sampler's layout, as ComfyUI's VAE decode takes it: [b, 16·t, h, w] × 0.9152.
    samples = (z * nodes.SCALE).reshape(1, 32, 8, 8)
    got = nodes.SeedVAEDecode.execute(
        {"samples": samples}, ours, tiling=False, tile_size=1024, tile_overlap=128, color_fix="none"
    ).result[0]
    assert got.shape == want.shape == (5, 64, 64, 3)
    err = (got - want).abs().max().item()
    print(f"decode vs ComfyUI: max abs {err:.2e} on [0, 1]")
    assert err <= 1e-3
    # The encoder's channels-last layout decodes the same.
    cl = nodes.SeedVAEDecode.execute(
        {"samples": nodes.from_vae_latents(z)}, ours, tiling=False, tile_size=1024, tile_overlap=128, color_fix="none"
    ).result[0]
    assert torch.equal(cl, got)


def test_the_loader_refuses_a_backend_that_cannot_run_here(inproc):
    """The loader asks seedvae.backends() and refuses a backend that cannot run here, with why,
    before any decode; the CPU always loads."""
    nodes = inproc[0]
    import seedvae

    found = {b["backend"]: b["unavailable"] for b in seedvae.backends()}
    missing = [c for c, n in nodes.BACKEND_NAMES.items() if found[n]]
    if not missing:
        pytest.skip("every backend can run on this machine")
    with pytest.raises(RuntimeError, match=f"the {missing[0]} backend cannot run here: .+"):
        nodes.SeedVAELoader.execute(CHECKPOINT, missing[0], 0.0)
    assert nodes.SeedVAELoader.execute(CHECKPOINT, "cpu", 0.0).result[0].backend == "cpu"


def test_encode_matches_comfyuis_seedvr2_vae(inproc):
    nodes, model, ours, torch = inproc
    images = smooth_frames(torch, 5, 64, 48, seed=5)
    clip = images.permute(3, 0, 1, 2)[None] * 2 - 1  # [1, 3, 5, 64, 48] in [-1, 1]
    with torch.no_grad():
        want = type(model).__mro__[1].encode(model, clip)  # VideoAutoencoderKL.encode: the mode
    got = nodes.SeedVAEEncode.execute(images, ours, tiling=False, tile_size=1024, tile_overlap=128).result[0]["samples"]
    assert got.shape == (1, 2, 8, 6, 16)
    mine = got.permute(0, 4, 1, 2, 3) / nodes.SCALE
    rel = (torch.linalg.vector_norm(mine - want) / torch.linalg.vector_norm(want)).item()
    print(f"encode vs ComfyUI: relative L2 {rel:.2e}")
    assert rel <= 1e-4


def test_comfyuis_cancel_stops_a_decode(inproc):
    nodes, _, ours, torch = inproc
    import comfy.model_management as mm

    samples = torch.randn(1, 16 * 3, 8, 8)
    calls = []

    def cancel_after_first(e):
        calls.append(e)
        if e.kind == "frames":
            mm.interrupt_current_processing(True)  # what ComfyUI's Cancel button does

    real = nodes.Progress.__call__
    nodes.Progress.__call__ = lambda self, e: (cancel_after_first(e), real(self, e))[1]
    try:
        with pytest.raises(mm.InterruptProcessingException):
            nodes.SeedVAEDecode.execute(
                {"samples": samples}, ours, tiling=False, tile_size=1024, tile_overlap=128, color_fix="none"
            )
    finally:
        nodes.Progress.__call__ = real
        mm.interrupt_current_processing(False)
    frames = [e.done for e in calls if e.kind == "frames"]
    assert frames and frames[-1] < 9, frames  # stopped before the last of 9 frames


def numz_color_fix():
    """The numz SeedVR2 node's colour functions (its own color_fix.py, unpacked from
    ../shared/thirdparty), with PyTorch's sort made stable as seedvae's histogram matching is
    (see tests/oracle/numz_color_reference.py)."""
    import tempfile
    import types

    import torch

    tmp = tempfile.mkdtemp()
    with tarfile.open(ARCHIVE.parent / "ComfyUI-SeedVR2_VideoUpscaler-4490bd1.tar.xz") as t:
        t.extractall(tmp, filter="data")
    tv, tvt = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    tvt.ToTensor = tvt.ToPILImage = object
    tv.transforms = tvt
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.transforms", tvt)
    sys.path.insert(0, str(Path(tmp) / "ComfyUI-SeedVR2_VideoUpscaler"))
    try:
        from src.utils import color_fix as cf
    finally:
        sys.path.pop(0)
    sort = torch.sort
    stable = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    stable.sort = lambda x, *a, **k: sort(x, *a, stable=True, **k)
    cf.torch = stable
    return cf


def test_the_clip_comes_back_with_its_frames_and_size(inproc):
    """7 frames of 100 x 76 (not 4n+1, not multiples of 16) through encode -> decode come back
    as 7 frames of 100 x 76, the LATENT carrying the record (or `encoded`, when a node in between
    dropped it); colour-fixed, they equal the numz node's lab function on the cropped frames."""
    nodes, _, ours, torch = inproc
    import types

    images = smooth_frames(torch, 7, 76, 100, seed=11)
    latent = nodes.SeedVAEEncode.execute(images, ours, tiling=False, tile_size=1024, tile_overlap=128).result[0]
    assert latent["samples"].shape == (1, 3, 10, 14, 16)  # 9 frames of 80 x 112
    assert latent[nodes.SHAPE_KEY] == {"frames": 7, "height": 76, "width": 100}
    args = dict(tiling=False, tile_size=1024, tile_overlap=128)
    plain = nodes.SeedVAEDecode.execute(latent, ours, color_fix="none", **args).result[0]
    assert plain.shape == (7, 76, 100, 3)
    # The record lost on the way (as the SeedVR2 conditioning node's output loses it): `encoded`.
    bare = {"samples": latent["samples"]}
    again = nodes.SeedVAEDecode.execute(bare, ours, color_fix="none", encoded=latent, **args).result[0]
    assert torch.equal(again, plain)
    whole = nodes.SeedVAEDecode.execute(bare, ours, color_fix="none", **args).result[0]
    assert whole.shape == (9, 80, 112, 3)
    off = nodes.SeedVAEDecode.execute(latent, ours, color_fix="none", crop=False, **args).result[0]
    assert torch.equal(off, whole)
    # Colour-fixed: the numz function on the cropped frames, five at a time as the node does.
    fixed = nodes.SeedVAEDecode.execute(latent, ours, color_fix="lab", color_reference=images, **args).result[0]
    cf = numz_color_fix()
    decoded = ours.model("decoder").decode(nodes.to_vae_latents(latent["samples"]).numpy())
    video = torch.from_numpy(decoded)[0, :, :7, :76, :100].permute(1, 0, 2, 3)  # [7, 3, 76, 100]
    style = images.permute(0, 3, 1, 2) * 2 - 1
    dbg = types.SimpleNamespace(log=lambda *a, **k: None)
    want = torch.cat(
        [cf.lab_color_transfer(video[k : k + 5].clone(), style[k : k + 5].clone(), dbg, luminance_weight=0.8) for k in (0, 5)]
    )
    want = ((want + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    err = (fixed - want).abs()
    print(f"crop + lab vs numz: max abs {err.max().item():.2e}, {(err > 1e-5).float().mean().item():.2%} off by > 1e-5")
    # lab's documented near-ties (seedvae-color): a 1-ulp difference swaps two ranks.
    assert err.max().item() <= 2e-3 and (err > 1e-5).float().mean().item() < 0.01


def test_the_pack_says_what_to_install_when_seedvae_is_missing(inproc, caplog):
    """Without the seedvae package, ComfyUI still starts: the pack registers no nodes and says,
    once, the pip command for ComfyUI's own Python."""
    import logging

    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "seedvae" or k.startswith("seedvae.")}
    sys.modules["seedvae"] = None  # import seedvae -> ImportError(name="seedvae")
    try:
        spec = importlib.util.spec_from_file_location(
            "seedvae_pack", PACK / "__init__.py", submodule_search_locations=[str(PACK)]
        )
        pack = importlib.util.module_from_spec(spec)
        sys.modules["seedvae_pack"] = pack
        with caplog.at_level(logging.ERROR, logger="seedvae"):
            spec.loader.exec_module(pack)
    finally:
        del sys.modules["seedvae"]
        sys.modules.pop("seedvae_pack", None)
        sys.modules.pop("seedvae_pack.nodes", None)
        sys.modules.update(saved)
    assert pack.NODES == [] and pack.MISSING is not None
    said = caplog.text
    assert f"{sys.executable} -m pip install seedvae[cpu]" in said and "restart ComfyUI" in said, said


def test_the_pack_installs_the_way_comfyui_users_install_nodes():
    """The registry's pyproject.toml and ComfyUI-Manager's requirements.txt name the same
    package, at the workspace's version."""
    import tomllib

    meta = tomllib.loads((PACK / "pyproject.toml").read_text())
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    version = cargo["workspace"]["package"]["version"]
    assert meta["project"]["version"] == version
    assert meta["tool"]["comfy"]["PublisherId"] and meta["tool"]["comfy"]["DisplayName"]
    reqs = [l.strip() for l in (PACK / "requirements.txt").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert reqs == meta["project"]["dependencies"] == [f"seedvae[cpu]>={version},<0.2"], reqs


class Planned:
    """A GPU model as the nodes see it: its backend, part and memory plan."""

    backend, part = "seedvae-cuda", "decoder"

    def __init__(self, need):
        self.need = need

    def device_need(self, shape):
        return self.need


def test_a_decode_that_fits_beside_a_loaded_model_leaves_it_loaded(inproc):
    """Before a GPU run the nodes ask ComfyUI for what seedvae's plan needs, not for everything:
    a model ComfyUI holds stays loaded when the run fits beside it, and goes when it does not."""
    nodes, _, ours, torch = inproc
    import comfy.model_management as mm
    import comfy.model_patcher

    dev = mm.get_torch_device()
    patcher = comfy.model_patcher.ModelPatcher(torch.nn.Linear(64, 64), load_device=dev, offload_device=dev)
    mm.load_models_gpu([patcher])
    held = lambda: any(m.model is patcher for m in mm.current_loaded_models)  # noqa: E731
    assert held()
    ours.make_room(Planned(1 << 20), [1, 16, 2, 8, 8])
    assert held(), "a run that fits beside the model unloaded it"
    ours.make_room(Planned(mm.get_total_memory(dev) * 4), [1, 16, 2, 8, 8])
    assert not held(), "a run that does not fit left the model loaded"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


async def run_prompt(port, prompt, deadline):
    """Queue `prompt`, collect the websocket messages until it has run; (messages, history)."""
    import aiohttp

    client = str(uuid.uuid4())
    messages = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"http://127.0.0.1:{port}/ws?clientId={client}") as ws:
            async with s.post(f"http://127.0.0.1:{port}/prompt", json={"prompt": prompt, "client_id": client}) as r:
                queued = await r.json()
                assert r.status == 200, queued
            pid = queued["prompt_id"]
            while time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=5)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                messages.append(m)
                d = m.get("data", {})
                if m["type"] == "execution_error":
                    pytest.fail(f"the workflow failed: {json.dumps(d)[:3000]}")
                if m["type"] == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                    break
            else:
                pytest.fail("the workflow did not finish in time")
        async with s.get(f"http://127.0.0.1:{port}/history/{pid}") as r:
            return messages, (await r.json())[pid]


def test_a_workflow_runs_in_comfyui_headless(comfy):
    from PIL import Image
    import torch

    frame = (smooth_frames(torch, 1, 76, 100, seed=9)[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(frame).save(comfy / "input" / "example.png")
    prompt = json.loads((PACK / "example_workflows" / "seedvae_encode_decode.json").read_text())
    prompt["2"]["inputs"].update(vae_name=CHECKPOINT, backend="cpu")
    # A clip of 7 frames (not 4n+1) of 100 x 76 (not multiples of 16).
    prompt["6"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 7}}
    prompt["3"]["inputs"]["pixels"] = ["6", 0]
    prompt["4"]["inputs"]["color_reference"] = ["6", 0]
    port = free_port()
    log = open(comfy / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch"],
        cwd=comfy, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                info = http(port, "/object_info/SeedVAEDecode")
                break
            except OSError:
                assert server.poll() is None, (comfy / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "ComfyUI did not answer"
                time.sleep(1)
        assert "SeedVAEDecode" in info, (comfy / "server.log").read_text()[-3000:]
        assert "SEEDVAE" in json.dumps(http(port, "/object_info/SeedVAELoader"))
        messages, history = asyncio.run(run_prompt(port, prompt, time.monotonic() + 600))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert history["status"]["status_str"] == "success", history["status"]
    saved = history["outputs"]["5"]["images"]
    # Encoded padded to 9 frames of 112 x 80; given back as the 7 frames of 100 x 76 it was.
    assert len(saved) == 7
    for s in saved:
        assert Image.open(comfy / "output" / s["subfolder"] / s["filename"]).size == (100, 76)
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    for node in ("3", "4"):
        mine = [p for p in progress if p.get("node") == node]
        assert mine and mine[-1]["value"] == mine[-1]["max"], (node, progress)
