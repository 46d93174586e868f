"""The node pack in a running ComfyUI against ComfyUI's own SeedVR2 VAE, over the HTTP API
(benches/scripts/h200_comfyui.sh runs it on the H200; with --cpu it runs anywhere, small).

One frame repeated into a clip, pre-processed and encoded by ComfyUI's SeedVR2 node (cached after
the first prompt), then decoded by ComfyUI's VAE Decode and by SeedVR2 VAE Decode (seedvae), each
into a sink that keeps the first 9 frames. Each node's time is the gap between ComfyUI's
"executing" messages (stamped here as they arrive); the GPU's memory in use is sampled by
nvidia-smi every 100 ms. Prints one JSON line per decode and writes results.json."""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np


def http(port, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


class GpuMemory:
    """nvidia-smi's memory.used (MiB) sampled in a thread: (time, MiB) pairs."""

    def __init__(self, on):
        self.samples, self.on, self.stop = [], on, False
        if on:
            threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.stop:
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5,
                ).stdout
                self.samples.append((time.monotonic(), float(out.split()[0])))
            except Exception:
                pass
            time.sleep(0.1)

    def peak(self, t0, t1):
        inside = [m for t, m in self.samples if t0 <= t <= t1]
        return max(inside) if inside else None


async def run_prompt(port, prompt, deadline):
    """Queue `prompt`; each node's (start, end) from the executing messages, and the history."""
    import aiohttp

    client = str(uuid.uuid4())
    spans, current = {}, None
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"http://127.0.0.1:{port}/ws?clientId={client}") as ws:
            async with s.post(f"http://127.0.0.1:{port}/prompt", json={"prompt": prompt, "client_id": client}) as r:
                queued = await r.json()
                if r.status != 200:
                    raise SystemExit(f"ComfyUI refused the prompt: {queued}")
            pid = queued["prompt_id"]
            while time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=5)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                d = m.get("data", {})
                if d.get("prompt_id") not in (None, pid):
                    continue
                now = time.monotonic()
                if m["type"] == "execution_error":
                    raise SystemExit(f"the workflow failed: {json.dumps(d)[:3000]}")
                if m["type"] == "executing":
                    if current is not None:
                        spans[current] = (spans[current][0], now)
                    current = d.get("node")
                    if current is None:
                        break
                    spans[current] = (now, None)
            else:
                raise SystemExit("the workflow did not finish in time")
        async with s.get(f"http://127.0.0.1:{port}/history/{pid}") as r:
            return spans, (await r.json())[pid]


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--comfy", type=Path, required=True, help="ComfyUI's folder (the pack and the bench nodes in custom_nodes)")
    a.add_argument("--checkpoint", required=True, help="a SeedVR2 VAE in models/vae")
    a.add_argument("--out", type=Path, required=True)
    a.add_argument("--width", type=int, default=1248)
    a.add_argument("--height", type=int, default=720)
    a.add_argument("--frames", type=int, default=81)
    a.add_argument("--backend", default="cuda", help="the seedvae loader's backend")
    a.add_argument("--vram-budget", type=float, default=0.0)
    a.add_argument("--cpu", action="store_true", help="ComfyUI on the CPU (a small run anywhere)")
    a.add_argument("--port", type=int, default=0)
    a.add_argument("--comfy-arg", action="append", default=[], help="passed to ComfyUI's main.py (repeatable)")
    a.add_argument("--prompt-timeout", type=float, default=300, help="seconds each workflow may take")
    args = a.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # A frame with smooth colour fields and some detail.
    h, w = args.height, args.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([np.sin(xx / 53 + c) * np.cos(yy / 37 - c) for c in range(3)], -1) * 0.4 + 0.5
    rgb += np.random.default_rng(1).normal(0, 0.03, rgb.shape)
    Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8)).save(args.comfy / "input" / "bench.png")

    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    cmd = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch"]
    if args.cpu:
        cmd.append("--cpu")
    cmd += args.comfy_arg
    log = open(args.out / "server.log", "w")
    server = subprocess.Popen(cmd, cwd=args.comfy, stdout=log, stderr=subprocess.STDOUT)
    gpu = GpuMemory(not args.cpu)
    results = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                http(port, "/object_info/SeedVAEBenchSink")
                info = http(port, "/object_info/SeedVAEDecode")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("ComfyUI did not come up: " + (args.out / "server.log").read_text()[-3000:])
                time.sleep(1)
        if "SeedVAEDecode" not in info:
            raise SystemExit("the node pack did not load: " + (args.out / "server.log").read_text()[-3000:])
        common = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "bench.png"}},
            "6": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": args.frames}},
            "7": {"class_type": "VAELoader", "inputs": {"vae_name": args.checkpoint}},
            "8": {"class_type": "SeedVR2InputProcessing", "inputs": {
                "images": ["6", 0], "vae": ["7", 0], "resolution": min(h, w), "spatial_tile_size": 512,
                "spatial_overlap": 64, "temporal_tile_size": 5, "enable_tiling": False}},
            "9": {"class_type": "SeedVAEBenchLayout", "inputs": {"samples": ["8", 0]}},
        }
        theirs = {
            "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["7", 0]}},
            "11": {"class_type": "SeedVAEBenchSink", "inputs": {"images": ["10", 0], "name": "comfyui"}},
        }

        def ours(overlap, name):
            return {
                "2": {"class_type": "SeedVAELoader", "inputs": {
                    "vae_name": args.checkpoint, "backend": args.backend, "vram_budget_gb": args.vram_budget}},
                "4": {"class_type": "SeedVAEDecode", "inputs": {
                    "samples": ["8", 0], "vae": ["2", 0], "tiling": True, "tile_size": 1024,
                    "tile_overlap": overlap, "color_fix": "lab", "crop": True, "color_reference": ["6", 0]}},
                "12": {"class_type": "SeedVAEBenchSink", "inputs": {"images": ["4", 0], "name": name}},
            }

        runs = [
            ("encode (ComfyUI's SeedVR2 pre-processing)", common, "8"),
            ("decode: ComfyUI's VAE Decode on its SeedVR2 VAE", {**common, **theirs}, "10"),
            ("decode: SeedVR2 VAE Decode (seedvae), first", {**common, **ours(128, "seedvae")}, "4"),
            # Another overlap (unused by the executor) makes ComfyUI run the node again.
            ("decode: SeedVR2 VAE Decode (seedvae), again", {**common, **ours(120, "seedvae2")}, "4"),
        ]
        for what, prompt, node in runs:
            spans, history = asyncio.run(run_prompt(port, prompt, time.monotonic() + args.prompt_timeout))
            if history["status"]["status_str"] != "success":
                raise SystemExit(f"{what}: {history['status']}")
            t0, t1 = spans.get(node, (None, None))
            r = {
                "run": what,
                "frames": args.frames, "width": w, "height": h,
                "seconds": None if t0 is None else round(t1 - t0, 3),
                "ms_per_frame": None if t0 is None else round(1e3 * (t1 - t0) / args.frames, 1),
                "gpu_memory_used_peak_mib": gpu.peak(t0, t1) if t0 is not None else None,
                "nodes": {k: round(e - s, 3) for k, (s, e) in spans.items() if e is not None},
            }
            print(json.dumps(r), flush=True)
            results.append(r)
            # ComfyUI's models off the GPU between runs (free_memory would also drop the cached
            # encode).
            http(port, "/free", {"unload_models": True})
            time.sleep(2)
        out = args.comfy / "output"
        a9, b9 = np.load(out / "comfyui.npy"), np.load(out / "seedvae.npy")
        results.append({
            "first_frames_max_abs_difference": float(np.abs(a9 - b9).max()),
            "note": "each applies its own colour transfer (ComfyUI's wavelet + LAB, seedvae's numz lab)",
        })
        print(json.dumps(results[-1]))
    finally:
        gpu.stop = True
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
