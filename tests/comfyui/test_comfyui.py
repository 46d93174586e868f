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

    frame = (smooth_frames(torch, 1, 72, 88, seed=9)[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(frame).save(comfy / "input" / "example.png")
    prompt = json.loads((PACK / "example_workflows" / "seedvae_encode_decode.json").read_text())
    prompt["2"]["inputs"].update(vae_name=CHECKPOINT, backend="cpu")
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
    # 72 x 88 padded to 80 x 96; one frame in, 4n+1 = 1 frame out.
    assert len(saved) == 1
    out = Image.open(comfy / "output" / saved[0]["subfolder"] / saved[0]["filename"])
    assert out.size == (96, 80)
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    for node in ("3", "4"):
        mine = [p for p in progress if p.get("node") == node]
        assert mine and mine[-1]["value"] == mine[-1]["max"], (node, progress)
