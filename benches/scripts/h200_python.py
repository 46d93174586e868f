"""The seedvae Python package on an NVIDIA GPU (CUDA provider), run by h200_python.sh:
the tiny fixture's goldens from numpy and from torch CUDA tensors (results come back on the
GPU), the encoder, auto's choice and reason, a cancel on the GPU, and a full-size 720p x 9-frame
decode through the package against the CLI and eager PyTorch fp16 in the same run."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import torch
from safetensors.numpy import load_file

import seedvae

R = ".dev/run"
F = f"{R}/fixtures"
B = f"{R}/seedvae"


def rel(a, b):
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


print("seedvae", seedvae.__version__, "torch", torch.__version__, "ORT", os.environ.get("SEEDVAE_ORT_LIB"))
events = []
dec = seedvae.Model(f"{F}/weights.safetensors", "decoder", "ort-cuda", cache="/tmp/pyc", progress=events.append)
print("decoder:", dec, [e.text for e in events if e.kind in ("stage", "notice")])
for case in ["t1_8x8", "t2_8x8", "t2_6x10", "t3_8x8"]:
    lat = load_file(f"{F}/latent_{case}.safetensors")["latent"]
    d = load_file(f"{F}/decoded_{case}.safetensors")
    g = d.get("decoded_f64", d["decoded"])
    v = dec.decode(lat)
    t = dec.decode(torch.from_numpy(lat).cuda())
    print(f"  {case}: numpy {rel(v, g):.3e}, torch cuda {rel(t, g):.3e} (result on {t.device}), bound 3e-3")
enc = seedvae.Model(f"{F}/weights.safetensors", "encoder", "ort-cuda", cache="/tmp/pyc")
video = load_file(f"{F}/video_t9_32x48.safetensors")["video"]
want = load_file(f"{F}/encoded_t9_32x48.safetensors")["latent_mean_f64"]
print(f"  encode: numpy {rel(enc.encode(video), want):.3e}, torch cuda {rel(enc.encode(torch.from_numpy(video).cuda()), want):.3e}")
auto = seedvae.Model(f"{F}/weights.safetensors", "decoder", "auto", cache="/tmp/pyc")
print("auto:", auto.backend, "|", auto.fallback_reason)

tok = seedvae.CancelToken()
lat = np.random.default_rng(0).standard_normal((1, 16, 12, 32, 32)).astype(np.float32)
try:
    dec.decode(lat, chunk=1, cancel=tok, progress=lambda e: e.kind == "frames" and tok.cancel())
    print("cancel: NOT cancelled")
except seedvae.CancelledError as e:
    print("cancel:", type(e).__name__, e, "| after it:", rel(dec.decode(load_file(f"{F}/latent_t1_8x8.safetensors")["latent"]), load_file(f"{F}/decoded_t1_8x8.safetensors")["decoded_f64"]))

print("== full size, 720p x 9 frames (latent 1x16x3x90x160), untiled, fp16")
if not os.path.exists("/tmp/full.safetensors"):
    subprocess.run([B, "synth", "-o", "/tmp/full.safetensors", "--quiet", "--force"], check=True)
g = torch.Generator().manual_seed(0)
l720 = torch.randn(1, 16, 3, 90, 160, generator=g)
from safetensors.torch import save_file  # noqa: E402

save_file({"latent": l720}, "/tmp/l720.safetensors")
for m in (dec, enc, auto):
    m.close()  # their GPU memory back before the CLI plans its tiles
cli = subprocess.run(
    [B, "decode", "-m", "/tmp/full.safetensors", "/tmp/l720.safetensors", "-o", "/tmp/c720.safetensors",
     "--backend", "ort-cuda", "--no-tiling", "--quiet", "--force", "--json", "--cache", "/tmp/pyfull"],
    capture_output=True, text=True,
)
cj = json.loads(cli.stdout) if cli.returncode == 0 else {"seconds": float("nan")}
print(f"  CLI (first: converts the graph): {cj['seconds']:.3f} s (rc {cli.returncode}) {cli.stderr[-300:] if cli.returncode else ''}")
full = seedvae.Model("/tmp/full.safetensors", "decoder", "ort-cuda", cache="/tmp/pyfull")
x = l720.cuda()
times = []
for i in range(3):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = full.decode(x, no_tiling=True)
    torch.cuda.synchronize()
    times.append(time.perf_counter() - t0)
print(f"  package (torch cuda in/out): {[round(t, 3) for t in times]} s; report {full.last_report['seconds']:.3f} s, {full.last_report['calls']} calls")
full.close()
cli = subprocess.run(cli.args, capture_output=True, text=True)
cj = json.loads(cli.stdout) if cli.returncode == 0 else {"seconds": float("nan")}
print(f"  CLI again, same run: {cj['seconds']:.3f} s (rc {cli.returncode})")
tt = subprocess.run(
    [sys.executable, "torch_decoder.py", "/tmp/full.safetensors", "--latent", "/tmp/l720.safetensors",
     "--dtype", "fp16", "--bench", "3", "--out", "/tmp/t720.safetensors"],
    cwd=R, capture_output=True, text=True,
)
print("  torch fp16:", tt.stdout.strip().splitlines()[-1] if tt.stdout.strip() else tt.stderr[-400:])
tv = load_file("/tmp/t720.safetensors")["video"]
print(f"  package vs torch fp16: rel L2 {rel(out, tv):.3e}")
if os.path.exists("/tmp/c720.safetensors"):
    print(f"  package vs CLI: rel L2 {rel(out, load_file('/tmp/c720.safetensors')['video']):.3e}")
print("== exit with a model open (the atexit close)")
keep = seedvae.Model(f"{F}/weights.safetensors", "decoder", "ort-cuda", cache="/tmp/pyc")
keep.decode(load_file(f"{F}/latent_t1_8x8.safetensors")["latent"])
print("  bye")
