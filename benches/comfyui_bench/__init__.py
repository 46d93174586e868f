"""Two helper nodes for the H200 ComfyUI benchmark (benches/scripts/h200_comfyui.py); not part
of the node pack. SeedVR2's pre-processing node returns its latent channels-last, and ComfyUI's
own VAE Decode takes the sampler's layout: the layout node turns one into the other (as the
sampler would). The sink keeps the first frames of a decode for the accuracy check and drops the
rest, so that saving 81 PNGs does not count in the time."""

import logging
import os

import folder_paths
import numpy as np


class SeedVAEBenchLayout:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",)}}

    RETURN_TYPES = ("LATENT",)
    # An output node too: a prompt of the pre-processing and this alone runs the encode, which
    # the decode prompts after it then find cached.
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "seedvae/bench"

    def run(self, samples):
        x = samples["samples"]  # [b, t, h, w, 16]
        b, t, h, w, c = x.shape
        return ({"samples": x.permute(0, 4, 1, 2, 3).reshape(b, c * t, h, w)},)


class SeedVAEBenchSink:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": "decode"})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "seedvae/bench"

    def run(self, images, name):
        first = images[:9].float().cpu().numpy().astype(np.float32)
        np.save(os.path.join(folder_paths.get_output_directory(), f"{name}.npy"), first)
        logging.info("seedvae bench %s: %s frames of %sx%s", name, images.shape[0], images.shape[2], images.shape[1])
        return {}


NODE_CLASS_MAPPINGS = {"SeedVAEBenchLayout": SeedVAEBenchLayout, "SeedVAEBenchSink": SeedVAEBenchSink}
