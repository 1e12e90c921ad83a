"""Inflated UNet (SPEC 6): sparse-causal processor, temporal attention, equality with the 2-D model,
trainable subset, save/load, errors, and the benchmark script (tiny, CPU)."""

import copy
import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
from safetensors.torch import load_file, save_file

from eegfm_video.models.attention_processors import FrameProcessor, SparseCausalAttnProcessor, TemporalAttnProcessor
from eegfm_video.models.inflated_unet import SD15_MODEL_ID, InflatedTransformerBlock, InflatedUNet, InflatedUNetOutput
from eegfm_video.models.temporal_attention import TemporalAttention

from conftest import load_script


TINY = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
)
# the transformer blocks of TINY: one per CrossAttn down/up layer (1 down, 2 up) and the mid block
BLOCKS = [
    "unet.down_blocks.0.attentions.0.transformer_blocks.0",
    "unet.up_blocks.1.attentions.0.transformer_blocks.0",
    "unet.up_blocks.1.attentions.1.transformer_blocks.0",
    "unet.mid_block.attentions.0.transformer_blocks.0",
]
TEMPORAL_PARAMS = ["norm.weight", "norm.bias", "to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight",
                   "to_out.0.bias"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads only cost here


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(**TINY).eval()


def inputs(batch=2, frames=4, seed=1):
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, frames, 8, 8, generator=gen)
    text = torch.randn(batch, 7, 32, generator=gen)
    return sample, torch.tensor(37), text


def randomize_temporal(model: InflatedUNet) -> None:
    """Give every temporal output projection nonzero weights (as after training)."""
    gen = torch.Generator().manual_seed(5)
    for name, param in model.named_parameters():
        if ".temporal_attn.to_out." in name:
            param.data.copy_(torch.randn(param.shape, generator=gen) * 0.2)


@torch.no_grad()
def run(model, sample, t, text):
    return model(sample, t, text).sample


@torch.no_grad()
def run_2d(unet, sample, t, text):
    """The 2-D UNet on each frame of each clip separately: (b, c, f, h, w)."""
    frames = [unet(sample[:, :, i], t, text).sample for i in range(sample.shape[2])]
    return torch.stack(frames, dim=2)


# --------------------------------------------------------------------------- equality with the 2-D model
def test_one_frame_is_the_2d_unet_bit_for_bit():
    unet = tiny_unet()
    model = InflatedUNet.from_unet2d(unet).eval()
    sample, t, text = inputs(frames=1)
    out = model(sample, t, text)
    assert isinstance(out, InflatedUNetOutput) and out.sample.shape == (2, 4, 1, 8, 8)
    assert torch.equal(out.sample, run_2d(unet, sample, t, text))


def test_temporal_attention_adds_exactly_zero_at_init():
    unet = tiny_unet()
    model = InflatedUNet.from_unet2d(unet).eval()
    without = InflatedUNet.from_unet2d(unet, temporal_attention=False).eval()
    zeros = [p for n, p in model.named_parameters() if ".temporal_attn.to_out." in n]
    assert len(zeros) == 2 * len(BLOCKS) and all(torch.count_nonzero(p) == 0 for p in zeros)
    sample, t, text = inputs(frames=5)
    assert torch.equal(run(model, sample, t, text), run(without, sample, t, text))


def test_identical_frames_reproduce_the_2d_unet_per_frame():
    unet = tiny_unet()
    model = InflatedUNet.from_unet2d(unet).eval()
    sample, t, text = inputs(frames=1)
    video = sample.expand(-1, -1, 5, -1, -1).contiguous()  # 5 copies of one image per clip
    expected = run_2d(unet, sample, t, text).expand(-1, -1, 5, -1, -1)
    out = run(model, video, t, text)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # different images per clip: the two clips still do not mix
    assert not torch.allclose(out[0], out[1], atol=1e-3)


def test_without_inflation_every_frame_is_the_2d_unet():
    unet = tiny_unet()
    model = InflatedUNet.from_unet2d(unet, sparse_causal=False, temporal_attention=False).eval()
    sample, t, text = inputs(frames=3)
    torch.testing.assert_close(run(model, sample, t, text), run_2d(unet, sample, t, text), atol=1e-5, rtol=0)


def test_per_clip_and_per_frame_conditioning_agree():
    model = InflatedUNet.from_unet2d(tiny_unet()).eval()
    sample, t, text = inputs(batch=2, frames=3)
    reference = run(model, sample, t, text)
    assert torch.equal(run(model, sample, torch.tensor([37, 37]), text), reference)
    assert torch.equal(run(model, sample, torch.full((6,), 37), text.repeat_interleave(3, dim=0)), reference)
    assert torch.equal(run(model, sample, 37, text), reference)
    with torch.no_grad():
        as_tuple = model(sample, t, text, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1 and torch.equal(as_tuple[0], reference)
    other_t = run(model, sample, torch.tensor([37, 500]), text)  # clip 1 at another step: only clip 1 changes
    assert torch.equal(other_t[0], reference[0]) and not torch.allclose(other_t[1], reference[1])


# --------------------------------------------------------------------------- sparse-causal attention
def attention_layer(processor):
    torch.manual_seed(3)
    layer = Attention(query_dim=16, heads=2, dim_head=8).eval()
    layer.set_processor(processor)
    return layer


def test_processor_with_one_frame_equals_ordinary_self_attention():
    x = torch.randn(3, 10, 16)
    with torch.no_grad():
        expected = attention_layer(AttnProcessor2_0())(x)
        assert torch.equal(attention_layer(SparseCausalAttnProcessor(num_frames=1))(x), expected)
        # f frames that are all the same image: every frame is ordinary self-attention on it
        same = x[:1].expand(4, -1, -1).contiguous()
        out = attention_layer(SparseCausalAttnProcessor(num_frames=4))(same)
        torch.testing.assert_close(out, expected[:1].expand(4, -1, -1), atol=1e-6, rtol=0)


def test_processor_matches_tune_a_video_keys_by_hand():
    """Queries of frame i over [keys of frame 0, keys of frame i-1] (frame 0 twice for i in {0, 1})."""
    frames, tokens = 5, 6
    layer = attention_layer(SparseCausalAttnProcessor(num_frames=frames))
    x = torch.randn(2 * frames, tokens, 16)
    with torch.no_grad():
        out = layer(x).view(2, frames, tokens, 16)
        q, k, v = (proj(x).view(2, frames, tokens, 2, 8) for proj in (layer.to_q, layer.to_k, layer.to_v))
        for i in range(frames):
            prev = max(i - 1, 0)
            keys = torch.cat((k[:, 0], k[:, prev]), dim=1)  # (2, 2n, heads, 8)
            values = torch.cat((v[:, 0], v[:, prev]), dim=1)
            weights = torch.einsum("bqhd,bkhd->bhqk", q[:, i], keys).mul(8**-0.5).softmax(dim=-1)
            expected = layer.to_out[0](torch.einsum("bhqk,bkhd->bqhd", weights, values).reshape(2, tokens, 16))
            torch.testing.assert_close(out[:, i], expected, atol=1e-6, rtol=0)


def test_processor_frame_i_depends_on_frames_0_previous_and_itself_only():
    frames = 5
    layer = attention_layer(SparseCausalAttnProcessor(num_frames=frames))
    x = torch.randn(2 * frames, 6, 16)
    with torch.no_grad():
        base = layer(x).view(2, frames, 6, 16)
        changed = torch.zeros(frames, frames, dtype=torch.bool)  # [perturbed j, output i]
        for j in range(frames):
            y = x.clone().view(2, frames, 6, 16)
            y[:, j] += 1.0
            out = layer(y.view(2 * frames, 6, 16)).view(2, frames, 6, 16)
            changed[j] = (out != base).flatten(2).any(-1).all(0)
    expected = torch.tensor([[j in (0, i - 1, i) for i in range(frames)] for j in range(frames)])
    assert torch.equal(changed, expected)


def test_inflated_unet_is_causal_over_frames_at_init():
    """Through many layers frame i depends on all frames <= i (chains of i-1), never on later frames."""
    model = InflatedUNet.from_unet2d(tiny_unet()).eval()
    sample, t, text = inputs(batch=1, frames=4)
    base = run(model, sample, t, text)
    for j in range(4):
        moved = sample.clone()
        moved[:, :, j] += 1.0
        out = run(model, moved, t, text)
        changed = [not torch.equal(out[:, :, i], base[:, :, i]) for i in range(4)]
        assert changed == [i >= j for i in range(4)], j


def test_temporal_attention_mixes_frames_once_trained():
    model = InflatedUNet.from_unet2d(tiny_unet()).eval()
    randomize_temporal(model)
    sample, t, text = inputs(batch=1, frames=4)
    base = run(model, sample, t, text)
    moved = sample.clone()
    moved[:, :, 3] += 1.0  # the last frame now reaches frame 0 (temporal attention is bidirectional)
    assert not torch.allclose(run(model, moved, t, text)[:, :, 0], base[:, :, 0], atol=1e-4)


# --------------------------------------------------------------------------- temporal attention module
def test_temporal_attention_by_hand():
    module = TemporalAttention(16, num_heads=2)
    x = torch.randn(6, 5, 16)
    assert torch.equal(module(x, num_frames=3), x)  # zero output projection
    torch.nn.init.normal_(module.to_out[0].weight)
    torch.nn.init.normal_(module.to_out[0].bias)
    with torch.no_grad():
        out = module(x, num_frames=3)
        h = module.norm(x).view(2, 3, 5, 16)  # (clips, frames, positions, c)
        q, k, v = (proj(h).view(2, 3, 5, 2, 8) for proj in (module.to_q, module.to_k, module.to_v))
        weights = torch.einsum("bfnhd,bgnhd->bnhfg", q, k).mul(8**-0.5).softmax(-1)  # over frames g
        mixed = torch.einsum("bnhfg,bgnhd->bfnhd", weights, v).reshape(6, 5, 16)
    torch.testing.assert_close(out, x + module.to_out[0](mixed), atol=1e-5, rtol=0)
    module.processor.num_frames = 3
    assert torch.equal(module(x), out)


def test_temporal_heads_default_to_the_spatial_heads():
    unet = tiny_unet()
    blocks = [m for m in InflatedUNet.from_unet2d(unet).modules() if isinstance(m, TemporalAttention)]
    # SD's legacy attention_head_dim=8 means 8 heads; blocks in BLOCKS order (down, up, up, mid)
    assert [(m.dim, m.num_heads) for m in blocks] == [(32, 8), (32, 8), (32, 8), (64, 8)]
    two = InflatedUNet.from_unet2d(unet, temporal_num_attention_heads=2)
    assert {m.num_heads for m in two.modules() if isinstance(m, TemporalAttention)} == {2}
    # processors: sparse-causal on attn1 only, cross-attention untouched
    procs = two.unet.attn_processors
    assert {type(p).__name__ for k, p in procs.items() if ".attn1." in k} == {"SparseCausalAttnProcessor"}
    assert {type(p).__name__ for k, p in procs.items() if ".attn2." in k} == {"AttnProcessor2_0"}


# --------------------------------------------------------------------------- diffusers-native layers
def test_frame_attention_is_listed_in_attn_processors_without_hooks():
    model = InflatedUNet.from_unet2d(tiny_unet())
    procs = model.unet.attn_processors
    kinds = {key: type(proc).__name__ for key, proc in procs.items()}
    assert {k for k, v in kinds.items() if v == "TemporalAttnProcessor"} == {
        f"{b[len('unet.'):]}.temporal_attn.processor" for b in BLOCKS}
    assert {k for k, v in kinds.items() if v == "SparseCausalAttnProcessor"} == {
        f"{b[len('unet.'):]}.attn1.processor" for b in BLOCKS}
    assert len(procs) == 3 * len(BLOCKS)  # attn1, attn2, temporal_attn per block
    blocks = [m for m in model.modules() if isinstance(m, InflatedTransformerBlock)]
    assert len(blocks) == len(BLOCKS) and not any(m._forward_hooks for m in model.modules())


def test_set_attn_processor_cannot_drop_the_attention_across_frames():
    model = InflatedUNet.from_unet2d(tiny_unet()).eval()
    randomize_temporal(model)
    sample, t, text = inputs(frames=3)
    expected = run(model, sample, t, text)
    before = {k: type(p) for k, p in model.unet.attn_processors.items()}
    with pytest.raises(TypeError, match=r"^AttnProcessor2_0 cannot replace SparseCausalAttnProcessor: that would "
                                        r"drop the attention across frames; keep the SparseCausalAttnProcessor "
                                        r"entries \(set_attn_processor takes a dict from attn_processors\), or build "
                                        r"the InflatedUNet with sparse_causal=False$"):
        model.unet.set_attn_processor(AttnProcessor2_0())
    assert {k: type(p) for k, p in model.unet.attn_processors.items()} == before
    with pytest.raises(TypeError, match=r"SparseCausalAttnProcessor cannot replace TemporalAttnProcessor: .* "
                                        r"temporal_attention=False$"):
        model.unet.down_blocks[0].attentions[0].transformer_blocks[0].temporal_attn.set_processor(
            SparseCausalAttnProcessor())
    # a dict that keeps the frame processors changes the other layers only
    model.unet.set_attn_processor({k: p if isinstance(p, FrameProcessor) else AttnProcessor()
                                   for k, p in model.unet.attn_processors.items()})
    kinds = {type(p).__name__ for p in model.unet.attn_processors.values()}
    assert kinds == {"AttnProcessor", "SparseCausalAttnProcessor", "TemporalAttnProcessor"}
    torch.testing.assert_close(run(model, sample, t, text), expected, atol=1e-5, rtol=0)
    # a fresh processor of the same class is accepted, and gets the frame count from forward
    model.unet.set_attn_processor({k: type(p)() if isinstance(p, FrameProcessor) else p
                                   for k, p in model.unet.attn_processors.items()})
    torch.testing.assert_close(run(model, sample, t, text), expected, atol=1e-5, rtol=0)


def test_lora_adapters_reach_the_temporal_attention():
    from peft import LoraConfig

    model = InflatedUNet.from_unet2d(tiny_unet()).eval()
    randomize_temporal(model)
    sample, t, text = inputs(batch=1, frames=3)
    expected = run(model, sample, t, text)
    model.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    adapted = {n.split(".temporal_attn.")[1].split(".lora_A")[0] for n, _ in model.named_parameters()
               if ".temporal_attn." in n and ".lora_A." in n}
    assert adapted == {"to_q", "to_k", "to_v", "to_out.0"}
    torch.testing.assert_close(run(model, sample, t, text), expected, atol=1e-6, rtol=0)  # LoRA B starts at zero
    model(sample, t, text).sample.square().mean().backward()
    grads = [p.grad for n, p in model.named_parameters() if ".temporal_attn.to_v.lora_B." in n]
    assert len(grads) == len(BLOCKS) and all(g is not None and g.abs().sum() > 0 for g in grads)


def _hand_written_keys(state: dict) -> dict:
    """The state dict as the hook-based TemporalAttention (a plain to_out Linear) named it."""
    return {k.replace(".temporal_attn.to_out.0.", ".temporal_attn.to_out."): v for k, v in state.items()}


def test_weights_of_the_hand_written_temporal_attention_still_load(tmp_path):
    model = InflatedUNet.from_unet2d(tiny_unet()).eval()
    randomize_temporal(model)
    sample, t, text = inputs(frames=3)
    expected = run(model, sample, t, text)
    old = _hand_written_keys(model.state_dict())
    assert sum(".temporal_attn.to_out.weight" in k for k in old) == len(BLOCKS)
    fresh = InflatedUNet.from_unet2d(tiny_unet()).eval()
    fresh.load_state_dict(old)  # strict
    assert torch.equal(run(fresh, sample, t, text), expected)
    # a save_pretrained folder written by the earlier code
    model.save_pretrained(tmp_path)
    weights = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(_hand_written_keys(load_file(weights)), weights)
    assert torch.equal(run(InflatedUNet.from_pretrained(tmp_path).eval(), sample, t, text), expected)
    # the module alone: its own hand-written state dict (to_out.weight, to_out.bias) loads strictly
    module = TemporalAttention(16, 2)
    hand_written = {k.replace("to_out.0.", "to_out."): torch.randn_like(v) for k, v in module.state_dict().items()}
    assert sorted(hand_written) == sorted(TEMPORAL_PARAMS[:5] + ["to_out.weight", "to_out.bias"])
    module.load_state_dict(hand_written)
    assert torch.equal(module.to_out[0].bias, hand_written["to_out.bias"])
    assert isinstance(module.processor, TemporalAttnProcessor)


# --------------------------------------------------------------------------- trainable subset
def test_default_trainable_subset_is_exactly_spec_6():
    model = InflatedUNet.from_unet2d(tiny_unet())
    names = model.set_trainable()
    expected = {f"{b}.{a}.to_q.weight" for b in BLOCKS for a in ("attn1", "attn2")}
    expected |= {f"{b}.temporal_attn.{p}" for b in BLOCKS for p in TEMPORAL_PARAMS}
    assert len(names) == len(expected) == 36 and set(names) == expected
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected
    assert set(model.set_trainable("temporal")) == {f"{b}.temporal_attn.{p}" for b in BLOCKS for p in TEMPORAL_PARAMS}
    assert model.set_trainable("all") == [n for n, _ in model.named_parameters()]
    with pytest.raises(ValueError, match=r"mode must be one of \('default', 'temporal', 'all'\), got 'temporl'"):
        model.set_trainable("temporl")


def test_gradient_checkpointing_gives_the_same_gradients():
    unet = tiny_unet()
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(2)  # the same temporal q/k/v initialisation both times
        model = InflatedUNet.from_unet2d(unet).train()
        randomize_temporal(model)
        names = model.set_trainable()
        if checkpointing:
            model.enable_gradient_checkpointing()
        sample, t, text = inputs(batch=1, frames=3)
        model(sample, t, text).sample.square().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if n in names})
    assert grads[0].keys() == grads[1].keys() and all(g is not None for g in grads[0].values())
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------- save / load
def test_save_pretrained_round_trip(tmp_path):
    model = InflatedUNet.from_unet2d(tiny_unet(), temporal_num_attention_heads=2).eval()
    randomize_temporal(model)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["_class_name"] == "InflatedUNet"
    flags = (saved["sparse_causal"], saved["temporal_attention"], saved["temporal_num_attention_heads"])
    assert flags == (True, True, 2)
    assert saved["unet_config"]["block_out_channels"] == [32, 64]
    loaded = InflatedUNet.from_pretrained(tmp_path).eval()
    assert {k: v for k, v in loaded.config.items() if not k.startswith("_")} == {
        k: v for k, v in model.config.items() if not k.startswith("_")}
    sample, t, text = inputs(frames=4)
    expected = run(model, sample, t, text)
    assert torch.equal(run(loaded, sample, t, text), expected)
    assert torch.equal(run(copy.deepcopy(model), sample, t, text), expected)  # block classes and processors copied

    plain = InflatedUNet.from_unet2d(tiny_unet(), sparse_causal=False, temporal_attention=False)
    plain.save_pretrained(tmp_path / "plain")
    back = InflatedUNet.from_pretrained(tmp_path / "plain")
    assert not any(isinstance(m, TemporalAttention) for m in back.modules())
    assert {type(p).__name__ for p in back.unet.attn_processors.values()} == {"AttnProcessor2_0"}


def test_from_pretrained_2d_offline_from_a_local_pipeline_folder(tmp_path):
    unet = tiny_unet()
    unet.save_pretrained(tmp_path / "pipe" / "unet")
    sample, t, text = inputs(frames=1)
    expected = run_2d(unet, sample, t, text)
    for path, subfolder in ((tmp_path / "pipe", "unet"), (tmp_path / "pipe" / "unet", None)):
        model = InflatedUNet.from_pretrained_2d(str(path), subfolder=subfolder).eval()
        assert torch.equal(run(model, sample, t, text), expected)
    assert InflatedUNet.from_pretrained_2d.__defaults__ == (SD15_MODEL_ID, "unet")
    assert SD15_MODEL_ID == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_from_unet2d_keeps_dtype_and_leaves_the_2d_unet_alone():
    unet = tiny_unet().to(torch.bfloat16)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    model = InflatedUNet.from_unet2d(unet)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert all(torch.equal(v, before[k]) for k, v in unet.state_dict().items())
    assert {type(p).__name__ for p in unet.attn_processors.values()} == {"AttnProcessor2_0"}


# --------------------------------------------------------------------------- errors
def test_forward_errors_name_the_argument():
    model = InflatedUNet.from_unet2d(tiny_unet())
    sample, t, text = inputs(batch=2, frames=3)
    with pytest.raises(ValueError, match=r"sample must be a 5-D tensor \(batch, channels, frames, height, width\), "
                                         r"got \(2, 4, 8, 8\)"):
        model(sample[:, :, 0], t, text)
    with pytest.raises(ValueError, match=r"sample has 3 channels \(dim 1\) but the UNet expects in_channels=4"):
        model(sample[:, :3], t, text)
    with pytest.raises(ValueError, match=r"encoder_hidden_states has batch 3, expected 2 \(one per clip\) or 6 "
                                         r"\(one per frame\) for sample of shape \(2, 4, 3, 8, 8\)"):
        model(sample, t, torch.randn(3, 7, 32))
    with pytest.raises(ValueError, match=r"encoder_hidden_states must be a 3-D tensor \(batch, tokens, dim\), "
                                         r"got \(2, 32\)"):
        model(sample, t, text[:, 0])
    with pytest.raises(ValueError, match=r"timestep must be a scalar or have 2 \(one per clip\) or 6 \(one per "
                                         r"frame\) entries, got shape \(3,\)"):
        model(sample, torch.tensor([1, 2, 3]), text)


def test_constructor_errors_name_the_argument():
    with pytest.raises(TypeError, match="unet_config must be a dict of UNet2DConditionModel arguments, got list"):
        InflatedUNet(unet_config=[1])
    with pytest.raises(ValueError, match="sparse_causal must be True or False, got 'yes'"):
        InflatedUNet(unet_config=TINY, sparse_causal="yes")
    with pytest.raises(ValueError, match="temporal_attention must be True or False, got 1"):
        InflatedUNet(unet_config=TINY, temporal_attention=1)
    with pytest.raises(ValueError, match="temporal_num_attention_heads must be None or an integer >= 1, got 0"):
        InflatedUNet(unet_config=TINY, temporal_num_attention_heads=0)
    with pytest.raises(ValueError, match="temporal_num_attention_heads must divide every transformer width, got 3 "
                                         "for width 32"):
        InflatedUNet(unet_config=TINY, temporal_num_attention_heads=3)
    flat = dict(TINY, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                mid_block_type=None)
    with pytest.raises(ValueError, match=r"nothing to inflate; got down_block_types=\['DownBlock2D', 'DownBlock2D'\]"):
        InflatedUNet(unet_config=flat)
    with pytest.raises(ValueError, match="sparse_causal=True needs self-attention in attn1, but unet_config has "
                                         "only_cross_attention=True; pass sparse_causal=False"):
        InflatedUNet(unet_config=dict(TINY, only_cross_attention=True))
    with pytest.raises(TypeError, match="unet must be a diffusers UNet2DConditionModel, got Linear"):
        InflatedUNet.from_unet2d(torch.nn.Linear(2, 2))


def test_layer_errors_name_the_argument():
    layer = attention_layer(SparseCausalAttnProcessor())
    x = torch.randn(6, 4, 16)
    with pytest.raises(RuntimeError, match=r"SparseCausalAttnProcessor.num_frames is not set: call it through "
                                           r"InflatedUNet.forward"):
        layer(x)
    layer.processor.num_frames = 4
    with pytest.raises(ValueError, match=r"SparseCausalAttnProcessor: the batch of 6 frame rows is not a multiple "
                                         r"of num_frames=4"):
        layer(x)
    layer.processor.num_frames = 0
    with pytest.raises(ValueError, match=r"SparseCausalAttnProcessor.num_frames must be an integer >= 1, got 0"):
        layer(x)
    layer.processor.num_frames = 3
    with pytest.raises(ValueError, match="encoder_hidden_states must be None"):
        layer(x, encoder_hidden_states=x)
    with pytest.raises(ValueError, match="does not support attention_mask; got a tensor, expected None"):
        layer(x, attention_mask=torch.ones(6, 4))
    assert repr(layer.processor) == "SparseCausalAttnProcessor(num_frames=3)"
    with pytest.raises(ValueError, match="num_heads must divide dim: got dim=10, num_heads=4"):
        TemporalAttention(10, 4)
    with pytest.raises(ValueError, match="dim must be an integer >= 1, got 0"):
        TemporalAttention(0, 1)
    with pytest.raises(ValueError, match=r"hidden_states must be \(batch \* frames, tokens, 16\), got shape "
                                         r"\(6, 4, 8\)"):
        TemporalAttention(16, 2)(torch.randn(6, 4, 8), num_frames=3)
    with pytest.raises(RuntimeError, match="TemporalAttnProcessor.num_frames is not set"):
        TemporalAttention(16, 2)(x)


# --------------------------------------------------------------------------- benchmark script
def test_video_unet_step_benchmark_runs_tiny_on_cpu(tmp_path):
    bench = load_script("benchmarks/video_unet_step.py")
    report = bench.main(["--device", "cpu", "--size", "tiny", "--height", "8", "--width", "16", "--warmup", "1",
                         "--steps", "2", "--rounds", "1", "--inference-steps", "2", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("video_unet_step_*.json")).read_text())
    assert saved == report
    assert saved["benchmark"] == "video_unet_step" and saved["command"].startswith("python ")
    assert saved["torch"] == torch.__version__ and saved["device"].startswith("cpu")
    assert (saved["frames"], saved["cfg_batch"], saved["latent_hw"]) == (6, 2, [8, 16])
    unet2d, inflated = saved["results"]["unet2d"], saved["results"]["inflated"]
    assert unet2d["step_ms_median"] > 0 and inflated["step_ms_median"] > 0
    assert len(unet2d["step_ms"]) == len(inflated["step_ms"]) == 2
    assert saved["ratio_inflated_vs_2d"] == round(inflated["step_ms_median"] / unet2d["step_ms_median"], 3)
    assert saved["clip_s_at_50_steps"] == round(50 * inflated["step_ms_median"] / 1000, 3)
    assert saved["measured_loop"]["inference_steps"] == 2 and saved["measured_loop"]["seconds"] > 0
