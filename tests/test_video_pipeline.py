"""EEG2VideoPipeline (SPEC 6) on tiny components: outputs, determinism, CFG, start step, noise, errors."""

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor

from eegfm import MAPEEncoder
from eegfm_video.alignment import EEGAlignment
from eegfm_video.models import InflatedUNet, SemanticDecoder, Seq2SeqLatentDecoder
from eegfm_video.noise import dynamic_aware_noise
from eegfm_video.pipeline import EEG2VideoPipeline, EEG2VideoPipelineOutput

B, C, T, F, LAT = 2, 3, 200, 3, 4  # clips, EEG channels, samples, frames, latent side
WIDTH = 16  # condition width = cross_attention_dim


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads only cost here


def tiny_pipeline(seed=0) -> EEG2VideoPipeline:
    torch.manual_seed(seed)
    alignment = EEGAlignment.from_components(
        MAPEEncoder(patch_size=50, embed_dim=16, depth=1, num_heads=2),
        SemanticDecoder(encoder_dim=16, hidden_dim=32, num_blocks=1, seq_len=4, width=WIDTH),
        Seq2SeqLatentDecoder(encoder_dim=16, d_model=16, num_layers=1, num_heads=2, latent_height=LAT,
                             latent_width=LAT, num_frames=F))
    with torch.no_grad():  # a nonzero negative embedding, so CFG's two branches differ
        alignment.negative_embedding.normal_()
    unet = InflatedUNet.from_unet2d(UNet2DConditionModel(
        sample_size=LAT, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        cross_attention_dim=WIDTH, attention_head_dim=8, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")))
    for name, param in unet.named_parameters():  # trained-like temporal attention (it starts at zero)
        if "temporal_attn.to_out" in name:
            param.data.normal_(0, 0.1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(8, 16), norm_num_groups=8, sample_size=2 * LAT)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = EEG2VideoPipeline(alignment.eval(), unet.eval(), vae.eval(), scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def eeg_inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, T, generator=g) * 20, torch.rand(C, 2, generator=g) * 100


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def manual_sampling(pipe, eeg, positions, *, steps, guidance_scale, strength, b, seed, negative=None):
    """The sampler written out step by step, independently of the pipeline's code."""
    alignment, unet, scheduler = pipe.alignment, pipe.unet, pipe.scheduler
    encoded = alignment.encoder(eeg, positions)
    cond = alignment.semantic_decoder(encoded.pooled())  # (B, L, W)
    negative = alignment.negative_embedding if negative is None else negative
    scheduler.set_timesteps(steps)
    n_run = int(steps * strength)
    timesteps = scheduler.timesteps[steps - n_run:]
    noise = dynamic_aware_noise((B, 4, F, LAT, LAT), b, generator=gen(seed))
    if strength == 1:
        latents = noise
    else:
        init = alignment.seq2seq.generate(encoded.tokens, encoded.token_mask).transpose(1, 2)
        alpha_bar = scheduler.alphas_cumprod[timesteps[0]]
        latents = alpha_bar.sqrt() * init + (1 - alpha_bar).sqrt() * noise
    for t in timesteps:
        eps_cond = unet(latents, t, cond).sample
        if guidance_scale > 1:
            eps_neg = unet(latents, t, negative.expand(B, -1, -1)).sample
            eps = eps_neg + guidance_scale * (eps_cond - eps_neg)
        else:
            eps = eps_cond
        latents = scheduler.step(eps, t, latents).prev_sample
    return latents


# --------------------------------------------------------------------------- outputs
def test_output_types_shapes_and_dtypes(pipe):
    eeg, positions = eeg_inputs()
    kwargs = dict(num_inference_steps=3, strength=1.0, generator=None)
    out = pipe(eeg, positions, **{**kwargs, "generator": gen()})
    assert isinstance(out, EEG2VideoPipelineOutput)
    assert isinstance(out.frames, np.ndarray) and out.frames.dtype == np.uint8
    assert out.frames.shape == (B, F, 2 * LAT, 2 * LAT, 3)
    pt = pipe(eeg, positions, output_type="pt", **{**kwargs, "generator": gen()}).frames
    assert isinstance(pt, torch.Tensor) and pt.dtype == torch.uint8 and np.array_equal(pt.numpy(), out.frames)
    latents = pipe(eeg, positions, output_type="latent", return_dict=False, **{**kwargs, "generator": gen()})[0]
    assert latents.shape == (B, 4, F, LAT, LAT) and latents.dtype == torch.float32
    assert np.array_equal(pipe.decode_latents(latents).numpy(), out.frames)


def test_num_frames_overrides_the_seq2seq_default(pipe):
    eeg, positions = eeg_inputs()
    out = pipe(eeg, positions, num_frames=5, num_inference_steps=2, strength=0.5, generator=gen()).frames
    assert out.shape == (B, 5, 2 * LAT, 2 * LAT, 3)


def test_same_seed_same_clips_other_seed_other_clips(pipe):
    eeg, positions = eeg_inputs()
    kwargs = dict(num_inference_steps=4, strength=0.75, shared_noise_share=0.3, output_type="latent")
    first = pipe(eeg, positions, generator=gen(5), **kwargs).frames
    again = pipe(eeg, positions, generator=gen(5), **kwargs).frames
    other = pipe(eeg, positions, generator=gen(6), **kwargs).frames
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


# --------------------------------------------------------------------------- sampling = the maths
def test_full_strength_b0_is_plain_ddim_from_gaussian_noise_with_cfg(pipe):
    eeg, positions = eeg_inputs()
    out = pipe(eeg, positions, num_inference_steps=4, guidance_scale=3.0, strength=1.0, shared_noise_share=0.0,
               generator=gen(2), output_type="latent").frames
    # plain DDIM: x_T = randn(shape, generator), then 4 guided DDIM steps
    expected = manual_sampling(pipe, eeg, positions, steps=4, guidance_scale=3.0, strength=1.0, b=0.0, seed=2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(dynamic_aware_noise((B, 4, F, LAT, LAT), 0.0, generator=gen(2)),
                       randn_tensor((B, 4, F, LAT, LAT), generator=gen(2)))


def test_guidance_scale_one_is_the_conditional_path_only(pipe):
    eeg, positions = eeg_inputs()
    kwargs = dict(num_inference_steps=3, guidance_scale=1.0, strength=1.0, shared_noise_share=0.2, output_type="latent")
    out = pipe(eeg, positions, generator=gen(4), **kwargs).frames
    expected = manual_sampling(pipe, eeg, positions, steps=3, guidance_scale=1.0, strength=1.0, b=0.2, seed=4)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # the negative embedding is not used at all
    other_negative = pipe(eeg, positions, generator=gen(4), negative_embeds=torch.ones(4, WIDTH), **kwargs).frames
    assert torch.equal(out, other_negative)
    guided = pipe(eeg, positions, generator=gen(4), **{**kwargs, "guidance_scale": 5.0}).frames
    assert not torch.allclose(out, guided)


def test_partial_strength_starts_from_noised_seq2seq_latents(pipe):
    eeg, positions = eeg_inputs()
    calls = []
    hook = pipe.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        out = pipe(eeg, positions, num_inference_steps=10, guidance_scale=2.0, strength=0.3, shared_noise_share=0.3,
                   generator=gen(8), output_type="latent").frames
    finally:
        hook.remove()
    assert calls == [2 * B] * 3  # int(10 * 0.3) = 3 steps, one batched UNet call on [negative, condition]
    expected = manual_sampling(pipe, eeg, positions, steps=10, guidance_scale=2.0, strength=0.3, b=0.3, seed=8)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_negative_embeds_override(pipe):
    eeg, positions = eeg_inputs()
    negative = torch.randn(1, 4, WIDTH, generator=gen(3))
    kwargs = dict(num_inference_steps=2, guidance_scale=4.0, strength=1.0, shared_noise_share=0.0, output_type="latent")
    out = pipe(eeg, positions, generator=gen(1), negative_embeds=negative, **kwargs).frames
    expected = manual_sampling(pipe, eeg, positions, steps=2, guidance_scale=4.0, strength=1.0, b=0.0, seed=1,
                               negative=negative[0])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_save_and_load_gives_identical_clips(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = EEG2VideoPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.alignment) is EEGAlignment and type(loaded.unet) is InflatedUNet
    eeg, positions = eeg_inputs()
    kwargs = dict(num_inference_steps=3, strength=0.7, guidance_scale=2.0)
    assert np.array_equal(pipe(eeg, positions, generator=gen(0), **kwargs).frames,
                          loaded(eeg, positions, generator=gen(0), **kwargs).frames)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "change, match",
    [
        (dict(eeg=torch.zeros(C, T)), r"`eeg` must be a tensor of shape \(batch, channels, times\), got \(3, 200\)"),
        (dict(positions=torch.zeros(4, 2)), r"`positions` must have shape \(2, 3, 2\) or \(3, 2\) to match `eeg` of "
                                            r"shape \(2, 3, 200\), got \(4, 2\)"),
        (dict(channel_mask=torch.ones(B, C)), r"`channel_mask` must be a bool tensor of shape \(2, 3\), got "
                                              r"torch.float32 \(2, 3\)"),
        (dict(n_times=torch.ones(3)), r"`n_times` must be a tensor of shape \(2,\), got \(3,\)"),
        (dict(num_frames=0), r"`num_frames` must be a positive integer or None, got 0"),
        (dict(num_inference_steps=0), r"`num_inference_steps` must be a positive integer, got 0"),
        (dict(num_inference_steps=2.5), r"`num_inference_steps` must be a positive integer, got 2.5"),
        (dict(guidance_scale=0.5), r"`guidance_scale` must be a number >= 1 \(1 disables classifier-free guidance\), "
                                   r"got 0.5"),
        (dict(negative_embeds=torch.zeros(3, 4, WIDTH)), r"`negative_embeds` must have shape \(4, 16\), \(1, 4, 16\) "
                                                         r"or \(2, 4, 16\), got \(3, 4, 16\)"),
        (dict(shared_noise_share=1.2), r"`shared_noise_share`: shared_noise_share must be in \[0, 1\], got 1.2"),
        (dict(shared_noise_share=[0.1, 0.2, 0.3]), r"`shared_noise_share`: shared_noise_share must be a number or 2 "
                                                   r"values \(one per clip\), got shape \(3,\)"),
        (dict(strength=0.0), r"`strength` \(the start step as a fraction of the schedule\) must be in \(0, 1\], got 0.0"),
        (dict(strength=1.5), r"`strength` \(the start step as a fraction of the schedule\) must be in \(0, 1\], got 1.5"),
        (dict(strength=0.1, num_inference_steps=5), r"`strength`=0.1 with `num_inference_steps`=5 runs no denoising "
                                                    r"step"),
        (dict(eta=-1.0), r"`eta` must be in \[0, 1\] \(0 = deterministic DDIM\), got -1.0"),
        (dict(generator=[gen(0)] * 3), r"`generator` is a list of 3 generators, but the batch has 2 clips"),
        (dict(output_type="pil"), r"`output_type` must be one of \('np', 'pt', 'latent'\), got 'pil'"),
    ],
)
def test_check_inputs_errors_name_the_argument(pipe, change, match):
    eeg, positions = eeg_inputs()
    kwargs = {"eeg": eeg, "positions": positions, "num_inference_steps": 2, **change}
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)


def test_components_must_agree():
    pipe = tiny_pipeline()
    wide = InflatedUNet.from_unet2d(UNet2DConditionModel(
        sample_size=LAT, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        cross_attention_dim=24, attention_head_dim=8, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")))
    with pytest.raises(ValueError, match=r"the semantic decoder's width=16 must equal the UNet's cross_attention_dim=24"):
        EEG2VideoPipeline(pipe.alignment, wide, pipe.vae, pipe.scheduler)
