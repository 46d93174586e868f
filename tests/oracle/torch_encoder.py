#!/usr/bin/env python3
"""PyTorch reference for the SeedVR2 VAE *encoder* (spec seedvr2_vae.md §4, §6), written with the
building blocks of ../shared/oracle/torch_decoder.py (causal conv, per-frame GroupNorm, resnet,
per-frame attention): conv_in → 4 down blocks (2 resnets each; a downsampler after blocks 0-2,
temporal from block 1 on) → mid (resnet, attention, resnet) → GroupNorm + SiLU → conv_out; the
posterior mean is the first 16 channels. Held to the fixture's encoder golden (the original
module's, fp64) by `python torch_encoder.py --check-fixture`.

  python torch_encoder.py --check-fixture [FIXTURE_DIR]
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT.parent / "shared" / "oracle"))
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


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--check-fixture":
        d = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT.parent / "shared" / "fixtures" / "vae_tiny"
        sys.exit(0 if check_fixture(d) < 1e-10 else 1)
    print(__doc__)
    sys.exit(2)
