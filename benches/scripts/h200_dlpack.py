"""torch CUDA tensors through the Python package on seedvae's CUDA executor, in place (DLPack
hand-over: ``last_report["io"] == "device"``) against the same decode from host memory: the
values (they should agree to the bit: the same kernels after the same layout change), the time
of each, and the encoder the same way. Run by h200_dlpack.sh; full-size random weights at
$W."""

import os
import sys
import time

import numpy as np
import torch
import seedvae

W = os.environ["W"]
H, WIDTH, T = (int(v) for v in (os.environ.get("H", 720), os.environ.get("WIDTH", 1248), os.environ.get("T", 21)))

torch.manual_seed(0)
ok = True
with seedvae.Model(W, "decoder", "cuda") as m:
    print("backend:", m.backend)
    z = torch.randn(1, 16, T, H // 8, WIDTH // 8, device="cuda:0")
    zh = z.cpu().numpy()
    m.decode(z[:, :, :2])  # cuDNN's plans and the kernels, once
    for trial in range(2):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        on_gpu = m.decode(z)
        torch.cuda.synchronize()
        t_dev = time.perf_counter() - t0
        io_dev = m.last_report["io"]
        t0 = time.perf_counter()
        host = m.decode(zh)
        t_host = time.perf_counter() - t0
        io_host = m.last_report["io"]
        # The host path's result as a CUDA tensor, as a torch user would have it.
        t0 = time.perf_counter()
        host_gpu = torch.from_numpy(host).to("cuda:0")
        torch.cuda.synchronize()
        t_up = time.perf_counter() - t0
    same = torch.equal(on_gpu, host_gpu)
    diff = (on_gpu - host_gpu).abs().max().item()
    frames = on_gpu.shape[2]
    print(f"decode {WIDTH}x{H}, {T} latent frames -> {frames}: in place ({io_dev}) {t_dev:.2f} s "
          f"({1e3 * t_dev / frames:.1f} ms/frame); from host memory ({io_host}) {t_host:.2f} s, "
          f"+ {t_up:.2f} s to put the clip on the GPU; equal to the bit: {same} (max abs {diff:.2e})")
    ok &= io_dev == "device" and io_host == "host" and diff <= 1e-6
    del on_gpu, host_gpu
with seedvae.Model(W, "encoder", "cuda") as m:
    x = torch.rand(1, 3, 33, H, WIDTH, device="cuda:0") * 2 - 1
    on_gpu = m.encode(x)
    io_dev = m.last_report["io"]
    host = torch.from_numpy(m.encode(x.cpu().numpy())).to("cuda:0")
    diff = (on_gpu - host).abs().max().item()
    odd = m.encode(x[:, :, :31])  # padded to 33 on the GPU, as the host path pads
    diff_pad = (odd - torch.from_numpy(m.encode(x[:, :, :31].cpu().numpy())).to("cuda:0")).abs().max().item()
    print(f"encode {WIDTH}x{H}, 33 frames, in place ({io_dev}) vs from host memory: max abs {diff:.2e}; "
          f"31 frames padded on the GPU: {diff_pad:.2e}")
    ok &= io_dev == "device" and diff <= 1e-6 and diff_pad <= 1e-6
print("ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
