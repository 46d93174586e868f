#!/usr/bin/env python3
"""The goldens `seedvae selftest` carries for its synthesized tiny VAE: PyTorch's decode and
encode, in float64, with the original module's math (../shared/oracle/torch_decoder.py and
torch_encoder.py here), of the inputs seedvae writes into DIR:

  python selftest_goldens.py DIR
    DIR/weights.safetensors              the synthesized tiny VAE (seedvae synth)
    DIR/latent_<case>.safetensors        tensor "latent" [1, 16, T, h, w]
    DIR/video_t9_32x48.safetensors       tensor "video" [1, 3, 9, 32, 48]
  → DIR/goldens.safetensors              decoded_<case> and encoded_t9_32x48, float32

Both oracles are first held to the vae_tiny fixture's goldens (the original module's output);
the script fails if either is off.
"""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from torch_encoder import check_fixture, encode  # noqa: E402  (puts shared/oracle on the path)
from torch_decoder import decode  # noqa: E402

FIXTURE = HERE.parents[1].parent / "shared" / "fixtures" / "vae_tiny"


def rel(a, b):
    return float((a - b).norm() / b.norm())


def main(d: Path) -> None:
    torch.set_num_threads(1)  # one summation order, run after run
    if check_fixture(FIXTURE) > 1e-10:
        sys.exit("the encoder oracle does not reproduce the fixture's golden")
    fp = {k: v.double() for k, v in load_file(FIXTURE / "weights.safetensors").items()}
    z = load_file(FIXTURE / "latent_t1_8x8.safetensors")["latent"].double()
    want = load_file(FIXTURE / "decoded_t1_8x8.safetensors")["decoded_f64"]
    if rel(decode(z, fp), want) > 1e-10:
        sys.exit("the decoder oracle does not reproduce the fixture's golden")
    p = {k: v.double() for k, v in load_file(d / "weights.safetensors").items()}
    out = {}
    for f in sorted(d.glob("latent_*.safetensors")):
        case = f.stem[len("latent_"):]
        out[f"decoded_{case}"] = decode(load_file(f)["latent"].double(), p).float().contiguous()
    video = load_file(d / "video_t9_32x48.safetensors")["video"].double()
    out["encoded_t9_32x48"] = encode(video, p).float().contiguous()
    save_file(out, str(d / "goldens.safetensors"))
    print(f"wrote {len(out)} goldens to {d / 'goldens.safetensors'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
