"""Reference outputs of the numz SeedVR2 node's colour correction (its own `color_fix.py`,
run in PyTorch f32) for `crates/seedvae-runner/src/color.rs`'s opt-in test:

    python tests/oracle/numz_color_reference.py OUT_DIR      # needs torch and numpy
    SEEDVAE_COLOR_REF=OUT_DIR cargo test -p seedvae-runner --lib color

torchvision, which the module imports but these functions do not use, is stubbed.
"""
import os, sys, tarfile, tempfile, types
import numpy as np, torch
OUT = sys.argv[1]
# The numz node's source, unpacked from ../shared/thirdparty (read-only there).
tmp = tempfile.mkdtemp()
tarfile.open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "thirdparty",
                          "ComfyUI-SeedVR2_VideoUpscaler-4490bd1.tar.xz")).extractall(tmp)
sys.path.insert(0, os.path.join(tmp, "ComfyUI-SeedVR2_VideoUpscaler"))
tv = types.ModuleType("torchvision"); tvt = types.ModuleType("torchvision.transforms")
tvt.ToTensor = tvt.ToPILImage = object; tv.transforms = tvt
sys.modules["torchvision"] = tv; sys.modules["torchvision.transforms"] = tvt
from src.utils import color_fix as cf
g = torch.Generator().manual_seed(3)
H, W = 72, 104
yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
smooth = torch.stack([0.7 * torch.sin(0.11 * xx + c) * torch.cos(0.07 * yy - c) for c in range(3)])[None]
cases = {
    "random": (torch.rand(1, 3, H, W, generator=g) * 2 - 1, torch.rand(1, 3, H, W, generator=g) * 2 - 1),
    "smooth": ((smooth + 0.05 * torch.randn(1, 3, H, W, generator=g)).clamp(-1, 1),
               (0.8 * smooth + torch.tensor([0.2, -0.1, 0.05])[None, :, None, None]).clamp(-1, 1)),
}
for name, (content, style) in cases.items():
    np.save(f"{OUT}/{name}_content.npy", content[0].numpy())
    np.save(f"{OUT}/{name}_style.npy", style[0].numpy())
    np.save(f"{OUT}/{name}_wavelet.npy", cf.wavelet_reconstruction(content.clone(), style.clone())[0].numpy())
    np.save(f"{OUT}/{name}_adain.npy", cf.adaptive_instance_normalization(content.clone(), style.clone())[0].numpy())
print("ok")
# lab: a batch of two frames (histograms span the batch, as the node applies it)
cb = torch.cat([cases["smooth"][0], cases["random"][0]]); sb = torch.cat([cases["smooth"][1], cases["random"][1]])
np.save(f"{OUT}/batch_content.npy", cb.numpy()); np.save(f"{OUT}/batch_style.npy", sb.numpy())
np.save(f"{OUT}/batch_lab.npy", cf.lab_color_transfer(cb.clone(), sb.clone(), types.SimpleNamespace(log=lambda *a, **k: None), luminance_weight=0.8).numpy())
print("lab ok")
dbg = types.SimpleNamespace(log=lambda *a, **k: None)
np.save(f"{OUT}/batch_hsv.npy", cf.hsv_saturation_histogram_match(cb.clone(), sb.clone(), dbg).numpy())
np.save(f"{OUT}/batch_wavelet_adaptive.npy", cf.wavelet_adaptive_color_correction(cb.clone(), sb.clone(), dbg).numpy())
print("hsv ok")
import torch.nn.functional as F
small = torch.rand(1, 3, 18, 26, generator=g) * 2 - 1
np.save(f"{OUT}/resize_in.npy", small[0].numpy())
np.save(f"{OUT}/resize_out.npy", F.interpolate(small, size=(72, 104), mode="bilinear", align_corners=False)[0].numpy())
print("resize ok")
# Decoders overshoot at highlights and edges: content leaving [-1, 1] (about a fifth of the
# values of the first frame, a few of the second), the style inside it, for every method.
over = torch.cat([cases["smooth"][0] * 1.35 + 0.1, cases["random"][0] * 1.05])
np.save(f"{OUT}/over_content.npy", over.numpy()); np.save(f"{OUT}/over_style.npy", sb.numpy())
np.save(f"{OUT}/over_wavelet.npy", cf.wavelet_reconstruction(over.clone(), sb.clone()).numpy())
np.save(f"{OUT}/over_adain.npy", cf.adaptive_instance_normalization(over.clone(), sb.clone()).numpy())
np.save(f"{OUT}/over_lab.npy", cf.lab_color_transfer(over.clone(), sb.clone(), dbg, luminance_weight=0.8).numpy())
np.save(f"{OUT}/over_hsv.npy", cf.hsv_saturation_histogram_match(over.clone(), sb.clone(), dbg).numpy())
np.save(f"{OUT}/over_wavelet_adaptive.npy", cf.wavelet_adaptive_color_correction(over.clone(), sb.clone(), dbg).numpy())
# The same with PyTorch's sort made stable: tied values (clamped highlights share a
# saturation, flat regions a level) keep pixel order, as seedvae's histogram matching does;
# the unstable default hands ties out in an order of its own (CPU introsort, GPU bitonic).
_sort = torch.sort
torch.sort = lambda x, *a, **k: _sort(x, *a, stable=True, **k)
for name, content, style in [("over", over, sb), ("batch", cb, sb)]:
    np.save(f"{OUT}/{name}_lab_stable.npy", cf.lab_color_transfer(content.clone(), style.clone(), dbg, luminance_weight=0.8).numpy())
    np.save(f"{OUT}/{name}_hsv_stable.npy", cf.hsv_saturation_histogram_match(content.clone(), style.clone(), dbg).numpy())
    np.save(f"{OUT}/{name}_wavelet_adaptive_stable.npy", cf.wavelet_adaptive_color_correction(content.clone(), style.clone(), dbg).numpy())
torch.sort = _sort
print("out of range ok")
