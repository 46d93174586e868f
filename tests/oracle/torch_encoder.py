#!/usr/bin/env python3
"""PyTorch reference for the SeedVR2 VAE *encoder* (spec seedvr2_vae.md §4, §6), written with the
building blocks of ../shared/oracle/torch_decoder.py (causal conv, per-frame GroupNorm, resnet,
per-frame attention): conv_in → 4 down blocks (2 resnets each; a downsampler after blocks 0-2,
temporal from block 1 on) → mid (resnet, attention, resnet) → GroupNorm + SiLU → conv_out; the
posterior mean is the first 16 channels. Held to the fixture's encoder golden (the original
module's, fp64) by `python torch_encoder.py --check-fixture`.

  python torch_encoder.py --check-fixture [FIXTURE_DIR]
  python torch_encoder.py WEIGHTS.safetensors --shape T,H,W [--dtype fp16|bf16|fp32|fp64]
        [--device cuda|cpu] [--seed 0] [--bench N] [--no-tf32] [--out FILE.safetensors]

The second form is the encoder's speed anchor, as torch_decoder.py is the decoder's: seeded frames
[1, 3, T, H, W] in [-1, 1] encoded eagerly (cuDNN, no tiling), timed over N calls after a warm-up;
prints one JSON line (ms per input frame, peak memory on a GPU).
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
# torch_decoder.py from ../shared/oracle, or beside this file (as the device scripts carry it).
sys.path[:0] = [str(ROOT.parent / "shared" / "oracle"), str(Path(__file__).resolve().parent)]
from torch_decoder import attention, causal_conv, gn, resnet  # noqa: E402


def downsample(x, p, pre, temporal):
    # Zero pad right and bottom by one (the conv's own padding is 0), then a causal conv of
    # stride (2 if temporal else 1, 2, 2).
    x = F.pad(x, (0, 1, 0, 1))
    return causal_conv(x, p, pre + ".conv", stride=(2 if temporal else 1, 2, 2), spatial_pad=0)


def encode(x, p, groups=32, n_blocks=4, layers=2, temporal_scale_num=2):
    """Frames [B, 3, T, H, W] in [-1, 1] → the posterior mean [B, 16, (T-1)//4 + 1, H/8, W/8]."""
    x = causal_conv(x, p, "encoder.conv_in")
    for i in range(n_blocks):
        for r in range(layers):
            x = resnet(x, p, f"encoder.down_blocks.{i}.resnets.{r}", groups)
        if i < n_blocks - 1:
            temporal = i >= n_blocks - temporal_scale_num - 1
            x = downsample(x, p, f"encoder.down_blocks.{i}.downsamplers.0", temporal)
    x = resnet(x, p, "encoder.mid_block.resnets.0", groups)
    x = attention(x, p, "encoder.mid_block.attentions.0", groups)
    x = resnet(x, p, "encoder.mid_block.resnets.1", groups)
    x = F.silu(gn(x, p, "encoder.conv_norm_out", groups))
    return causal_conv(x, p, "encoder.conv_out")[:, :16]


def check_fixture(fixture):
    from safetensors.torch import load_file

    p = {k: v.double() for k, v in load_file(fixture / "weights.safetensors").items()}
    video = load_file(fixture / "video_t9_32x48.safetensors")["video"].double()
    want = load_file(fixture / "encoded_t9_32x48.safetensors")["latent_mean_f64"]
    got = encode(video, p)
    err = float((got - want).norm() / want.norm())
    print(f"encoder vs the fixture's golden: relative L2 {err:.3e}")
    return err


def bench(argv):
    import argparse
    import json
    import time

    from safetensors.torch import load_file, save_file

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("--shape", required=True, help="T,H,W of seeded frames")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32", "fp64"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", type=int, default=0, help="timed repetitions after one warm-up")
    ap.add_argument("--no-tf32", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    dt = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32, "fp64": torch.float64}[a.dtype]
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = False  # as torch_decoder.py: its search hangs on the largest shapes
    p = {k: v.to(a.device, dt) for k, v in load_file(a.weights).items() if k.startswith("encoder.")}
    cfg = {}
    if p["encoder.conv_in.weight"].shape[0] != 128:  # the reduced-width fixture: read its config
        import json as _json

        c = _json.load(open(Path(a.weights).parent / "config.json"))
        cfg = {"groups": c["norm_num_groups"], "n_blocks": len(c["block_out_channels"]),
               "layers": c["layers_per_block"], "temporal_scale_num": c["temporal_scale_num"]}
    T, H, W = (int(v) for v in a.shape.split(","))
    g = torch.Generator().manual_seed(a.seed)
    x = (torch.rand(1, 3, T, H, W, generator=g) * 2 - 1).to(a.device, dt)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        t0 = time.perf_counter(); y = encode(x, p, **cfg); sync(); first = time.perf_counter() - t0
        per = None
        if a.bench:
            if a.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(a.bench):
                y = encode(x, p, **cfg)
            sync(); per = (time.perf_counter() - t0) / a.bench
    msg = {"shape": list(y.shape), "dtype": a.dtype, "device": a.device, "first_s": round(first, 4)}
    if per is not None:
        msg.update(per_call_s=round(per, 4), ms_per_frame=round(per * 1000 / T, 2))
        if a.device.startswith("cuda"):
            msg["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(msg))
    if a.out:
        save_file({"latent": y.float().cpu().contiguous()}, a.out)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--check-fixture":
        d = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT.parent / "shared" / "fixtures" / "vae_tiny"
        sys.exit(0 if check_fixture(d) < 1e-10 else 1)
    if len(sys.argv) >= 2 and not sys.argv[1].startswith("-"):
        bench(sys.argv[1:])
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
