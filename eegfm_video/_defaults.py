"""Defaults shared by the models, the pipeline and the ``eegfm-video`` command.

Kept apart from the modules that define the models so that reading them (``eegfm-video --help``)
imports neither diffusers nor transformers.
"""

__all__ = ["DEFAULT_GUIDANCE_SCALE", "DEFAULT_STRENGTH", "SD15_MODEL_ID"]

#: Stable Diffusion 1.5 on the Hub (``runwayml/stable-diffusion-v1-5`` was deleted in 2024; this is
#: the maintained copy that diffusers' documentation uses). The UNet is in its ``unet`` subfolder.
SD15_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"

#: Classifier-free guidance scale of Tune-A-Video's and EEG2Video's sampling scripts.
DEFAULT_GUIDANCE_SCALE = 12.5
#: Default start step as a fraction of the schedule (a parameter: the paper does not give t).
DEFAULT_STRENGTH = 0.8
