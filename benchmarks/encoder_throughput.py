"""Training-step throughput of MAPEEncoder vs braindecode's Labram, side by side in one process.

Both models get the same input (B recordings of C channels x T samples), the same patch
size and Transformer size, a 2-class head, cross-entropy, the same AdamW (fused, as eegfm's
Trainer uses, unless ``--adamw foreach``), and (by default on GPU) bf16 autocast. On CPU the
clock is process CPU time (robust to other load on a shared machine). Rounds alternate between the two models so drift hits both alike; the
median step time of each is reported as tokens/s (B * C * T // patch_size tokens a step)
and, on CUDA, peak memory.

Issue target (GPU, base size, B=128, 64 ch x 4 s at 200 Hz, patch 200): MAPEEncoder
>= 3x Labram tokens/s and <= 4 GB peak memory.

The classification step reads the CLS token, as braindecode's Labram classifies by default; eegfm's
last block then computes the CLS token alone (:meth:`MAPEEncoder.forward_cls`, what
``pooling="cls"`` does; exact), where Labram's computes every token. ``--full-last-block`` times
eegfm with every token through every block instead.

``--task pretrain`` times eegfm's full masked pre-training step instead (frozen tokenizer
targets + one encoder pass per masking strategy, three by default) against the same Labram
forward+backward. ``--cached-codes`` takes the targets precomputed (what ``eegfm pretrain``
does with its code cache) and ``--single-pass`` uses one encoder pass per step.

``--compile`` wraps eegfm's forward + loss in ``torch.compile`` (its backward is compiled with
it; the AdamW step stays eager, fused, for both models), as ``TrainConfig(compile=True)`` does;
``--compile-labram`` does the same for Labram, so both can be compared compiled or eager.
Compilation happens in the warm-up steps, outside the timed rounds (compile time is printed).

``--padded`` feeds a mixed-montage batch: samples cycle through the ``--caps`` channel counts
(default 19, 32 and 64) zero-padded to the largest, as real batches are. eegfm gets the channel
mask (so its attention takes a key padding mask); braindecode's Labram takes no mask, so it
gets each sample's channels zero-padded to the largest (and attends over the padding).
tokens/s counts the real tokens (sum of each sample's channels x patches) for both models.

With ``--task pretrain`` the Labram arm is, by default (``--labram-step masked``), a
LaBraM-style masked step of the same size: a random ``--mask-ratio`` of the tokens has its raw
patch zeroed (LaBraM swaps a learned mask token in after its patch embedding: the same
compute), Labram's forward returns every patch token, a linear head (width -> ``--num-codes``)
runs on the masked tokens only (boolean indexing, as LaBraM's code does) and cross-entropy
against the same cached codes. LaBraM's own pre-training adds a second, symmetric pass on the
complementary mask; it is not timed here. Compiled (``--compile-labram``), the boolean indexing
splits that step into two graphs, as it would LaBraM's. ``--labram-step classify`` gives the earlier
comparison (Labram classification forward + backward).

braindecode's Labram sets its width from its temporal convolution, not from ``embed_dim``, so at
sizes other than base it is not the size asked for: the report gives its real width and
parameter count beside eegfm's.

``--flops`` also counts each model's forward + backward FLOPs per sample (``torch.utils.flop_counter``,
the CPU's fused attention included): at base size eegfm's CLS step and Labram's are within 3 % of each
other, so the tokens/s ratio is a ratio of FLOP rates.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over each model's warm-up; on CPU
with ``--memory``, each model's steps run again in a subprocess of their own and the growth
of the process's peak resident memory (VmHWM) over the models and inputs is reported.

    python benchmarks/encoder_throughput.py                      # GPU if present, else a CPU-sized run
    python benchmarks/encoder_throughput.py --device cpu --batch-size 8 --dtype fp32
    python benchmarks/encoder_throughput.py --device cpu --padded --memory --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from eegfm import MAPEEncoder
from eegfm.modules.masking import random_mask
from eegfm.modules.patch_embed import CONV_IMPLS, NeuralPatchEmbedder, patch_embedders  # noqa: F401  (tests use it)

SIZES = {"tiny": (64, 2, 4), "small": (128, 6, 8), "base": (200, 12, 10)}  # D, layers, heads
LABRAM = "braindecode.Labram"


class EncoderClassifier(nn.Module):
    """MAPEEncoder + linear head on the CLS token (Labram's default classifier reads its CLS token too).

    ``cls_only`` (default): the encoder's :meth:`~eegfm.MAPEEncoder.forward_cls`, whose last block
    computes the CLS token alone, as ``pooling="cls"`` classifies; False: the full forward's ``.cls``
    (``--full-last-block``, every token through every block, as Labram computes).
    """

    def __init__(self, encoder: MAPEEncoder, n_outputs: int, cls_only: bool = True):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, n_outputs)
        self.cls_only = cls_only

    def forward(self, x, positions, channel_mask=None):
        if self.cls_only:
            return self.head(self.encoder.forward_cls(x, positions, channel_mask=channel_mask, check_finite=False))
        return self.head(self.encoder(x, positions, channel_mask=channel_mask, check_finite=False).cls)


class LabramMasked(nn.Module):
    """LaBraM-style masked-token step: Labram's patch tokens, a code head on the masked ones.

    ``forward(x (B, C, T), mask (B, C, K) bool, codes (B, C*K), ch_names)`` zeroes the masked
    patches of ``x``, runs Labram to its patch tokens (B, C*K, D), applies ``head`` to the masked
    tokens only and returns their mean cross-entropy against ``codes``.
    """

    def __init__(self, labram: nn.Module, num_codes: int):
        super().__init__()
        self.labram = labram
        self.head = nn.Linear(labram.embed_dim, num_codes)

    def forward(self, x, mask, codes, ch_names):
        batch, n_chans, n_patches = mask.shape
        hidden = (x.view(batch, n_chans, n_patches, -1) * ~mask[..., None]).view_as(x)
        tokens = self.labram(hidden, ch_names=ch_names, return_patch_tokens=True)  # (B, C*K, D)
        chosen = mask.flatten(1)
        return F.cross_entropy(self.head(tokens[chosen]).float(), codes[chosen])


def build_pretrainer(args, dim, depth, heads):
    from eegfm.models.pretrainer import MaskedPretrainer
    from eegfm.models.tokenizer import NeuralTokenizer

    size = dict(patch_size=args.patch_size, embed_dim=dim, depth=depth, num_heads=heads, sfreq=args.sfreq)
    tokenizer = NeuralTokenizer(**size, num_codes=args.num_codes).eval()
    return MaskedPretrainer(**size, num_codes=args.num_codes, strategies=args.strategies.split(","),
                            single_pass=args.single_pass, decoder_depth=getattr(args, "decoder_depth", 0),
                            visible_blocks=getattr(args, "visible_blocks", 0)).attach_tokenizer(tokenizer)


def build_models(args, n_chans, n_times, device):
    """eegfm's model and braindecode's Labram (with the code head for the masked step)."""
    dim, depth, heads = SIZES[args.size]
    if args.task == "pretrain":
        ours = build_pretrainer(args, dim, depth, heads).to(device)
        ours._tokenizer.to(device)
    else:
        ours = EncoderClassifier(
            MAPEEncoder(patch_size=args.patch_size, embed_dim=dim, depth=depth, num_heads=heads, sfreq=args.sfreq),
            n_outputs=2, cls_only=not getattr(args, "full_last_block", False),
        ).to(device)
    masked = args.task == "pretrain" and args.labram_step == "masked"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from braindecode.models import Labram

        labram = Labram(
            n_times=n_times, n_outputs=0 if masked else 2, n_chans=n_chans, sfreq=args.sfreq,
            patch_size=args.patch_size, embed_dim=dim, num_layers=depth, num_heads=heads,
        )
    labram = (LabramMasked(labram, args.num_codes) if masked else labram).to(device)
    for embedder in patch_embedders(ours):  # --embedder, --checkpoint-embedder
        embedder.conv_impl, embedder.checkpoint_convs = args.embedder, args.checkpoint_embedder
    return ours, labram


def make_inputs(args, device) -> SimpleNamespace:
    """The batch both models get: ``x`` (B, C, T), eegfm's positions and channel mask, labels,
    Labram's channel names, and the real tokens per step.

    ``--padded``: sample i has ``caps[i % len(caps)]`` channels, zero-padded to the largest.
    """
    with warnings.catch_warnings():  # braindecode's imports warn about MNE's montage names
        warnings.simplefilter("ignore")
        from braindecode.models.labram import LABRAM_CHANNEL_ORDER

    n_times = int(args.seconds * args.sfreq)
    n_patches = n_times // args.patch_size
    chans = ([int(c) for c in args.caps.split(",")] * args.batch_size)[: args.batch_size] if args.padded \
        else [args.n_chans] * args.batch_size
    n_chans = max(chans)
    x = torch.randn(args.batch_size, n_chans, n_times, device=device) * 20
    channel_mask = torch.arange(n_chans, device=device)[None, :] < torch.tensor(chans, device=device)[:, None]
    x = x * channel_mask[:, :, None]
    positions = torch.rand(n_chans, 2, device=device) * 100
    return SimpleNamespace(
        x=x, n_times=n_times, n_patches=n_patches, chans=chans,
        positions=positions.expand(args.batch_size, -1, -1) if args.padded else positions,
        channel_mask=channel_mask if args.padded else None,
        token_mask=channel_mask[:, :, None].expand(-1, -1, n_patches),
        labels=torch.randint(0, 2, (args.batch_size,), device=device),
        ch_names=list(LABRAM_CHANNEL_ORDER[:n_chans]),
        tokens=sum(chans) * n_patches,
    )


def make_step(model, loss_of, device, dtype, fused=False, optimizer=True, compile_mode=None,
              compile_backend="inductor"):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fused or None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    if compile_mode is not None:  # forward + loss (and so their backward); the optimizer step stays eager
        loss_of = torch.compile(loss_of, backend=compile_backend,
                                mode=None if compile_mode == "default" else compile_mode)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_of(model)
        loss.backward()
        if optimizer:
            opt.step()

    return step


def time_steps(step, n, device, clock=time.perf_counter) -> list[float]:
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock() - start)
    return times


def step_flops(model, loss_of) -> int:
    """FLOPs of one forward + backward of ``loss_of(model)`` (matrix products and attention, as
    ``torch.utils.flop_counter`` counts them; its table lacks the CPU's fused attention, added here
    with the formulas it uses for the GPU's). Gradients are cleared afterwards."""
    from torch.utils import flop_counter

    aten = torch.ops.aten
    cpu_attention = {
        aten._scaled_dot_product_flash_attention_for_cpu:
            lambda q, k, v, *_, out_shape=None, **__: flop_counter.sdpa_flop_count(q, k, v),
        aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda grad, q, k, v, *_, out_shape=None, **__: flop_counter.sdpa_backward_flop_count(grad, q, k, v),
    }
    with flop_counter.FlopCounterMode(display=False, custom_mapping=cpu_attention) as counter:
        loss_of(model).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def contenders(args, ours, labram, inputs) -> dict:
    """{name: (model, loss_of(model))}: eegfm's step and Labram's, on the same batch."""
    ce = nn.CrossEntropyLoss()
    x, positions, channel_mask = inputs.x, inputs.positions, inputs.channel_mask
    if args.task == "pretrain":
        with torch.no_grad():  # the codes both models predict (cached codes; -1 at padding)
            targets = ours._targets(x, positions.expand(len(x), -1, -1), channel_mask, None)

        def ours_loss(m):
            out = m(x, positions, channel_mask=channel_mask, targets=targets if args.cached_codes else None)
            return out.loss_sum / out.count
    else:
        def ours_loss(m):
            return ce(m(x, positions, channel_mask).float(), inputs.labels)

    if args.task == "pretrain" and args.labram_step == "masked":
        def labram_loss(m):
            mask = random_mask(inputs.token_mask, args.mask_ratio)  # drawn each step, as eegfm's masks
            return m(x, mask, targets, inputs.ch_names)
    else:
        def labram_loss(m):
            return ce(m(x, ch_names=inputs.ch_names).float(), inputs.labels)

    ours_name = "eegfm.MaskedPretrainer step" if args.task == "pretrain" else "eegfm.MAPEEncoder"
    return {ours_name: (ours, ours_loss), LABRAM: (labram, labram_loss)}


def peak_rss_growth(argv, arm: str) -> float:
    """GiB the peak resident memory of a fresh process grows by over ``arm``'s warm-up steps (+ 1)."""
    cmd = [sys.executable, __file__, *argv, "--memory-arm", arm]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_rss_growth_GiB"]


def _max_rss() -> int:
    """Peak resident bytes of this process: VmHWM (Linux; ru_maxrss would start at the parent's
    size, which exec carries over), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cuda | cpu | auto")
    parser.add_argument("--size", default="base", choices=sorted(SIZES))
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 on GPU, 8 on CPU")
    parser.add_argument("--n-chans", type=int, default=64)
    parser.add_argument("--padded", action="store_true",
                        help="mixed-montage batches: samples of --caps channels padded to the largest")
    parser.add_argument("--caps", default="19,32,64", help="--padded: channel counts, cycled over the batch")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--sfreq", type=float, default=200.0)
    parser.add_argument("--patch-size", type=int, default=200)
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp32"], help="default bf16 on GPU, fp32 on CPU")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--task", default="classify", choices=["classify", "pretrain"],
                        help="classify: encoder + head; pretrain: the full masked pre-training step")
    parser.add_argument("--labram-step", default="masked", choices=["masked", "classify"],
                        help="--task pretrain: Labram's LaBraM-style masked step (default) or its classification step")
    parser.add_argument("--flops", action="store_true",
                        help="also count each model's forward + backward FLOPs per sample (torch FlopCounterMode)")
    parser.add_argument("--full-last-block", action="store_true",
                        help="--task classify: eegfm's last block computes every token (encoder(...).cls), "
                             "not the CLS token alone (forward_cls, the default)")
    parser.add_argument("--mask-ratio", type=float, default=0.5, help="--labram-step masked: tokens masked")
    parser.add_argument("--num-codes", type=int, default=2048, help="--task pretrain: codebook size")
    parser.add_argument("--strategies", default="random,channel,temporal", help="--task pretrain: masks per step")
    parser.add_argument("--single-pass", action="store_true",
                        help="--task pretrain: one encoder pass per step, one strategy per sample")
    parser.add_argument("--decoder-depth", type=int, default=0,
                        help="--task pretrain: MaskedPretrainer(decoder_depth=...): the encoder sees only the visible "
                             "tokens, a decoder of this many blocks predicts the masked ones (0: the paper's step)")
    parser.add_argument("--visible-blocks", type=int, default=0,
                        help="--task pretrain: MaskedPretrainer(visible_blocks=...): the first this many encoder "
                             "blocks see only the visible tokens")
    parser.add_argument("--cached-codes", action="store_true",
                        help="--task pretrain: targets precomputed once (as eegfm pretrain's code cache does)")
    parser.add_argument("--no-optimizer", action="store_true",
                        help="time forward + backward only (no AdamW step) for both models")
    parser.add_argument("--adamw", default="fused", choices=["fused", "foreach"],
                        help="AdamW implementation for BOTH models (eegfm's Trainer uses fused)")
    parser.add_argument("--clock", default=None, choices=["wall", "process"],
                        help="wall time, or process CPU time (default on CPU: robust to other load)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--memory", action="store_true",
                        help="CPU: peak resident memory of each model's step, each in a subprocess of its own")
    parser.add_argument("--memory-arm", choices=["ours", "labram"], help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile eegfm's forward + loss (as TrainConfig(compile=True))")
    parser.add_argument("--compile-labram", action="store_true", help="torch.compile Labram's forward + loss too")
    parser.add_argument("--compile-mode", default="default",
                        choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode for --compile / --compile-labram")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (inductor; aot_eager only checks that it compiles)")
    parser.add_argument("--embedder", default=None, choices=CONV_IMPLS,
                        help="how eegfm's patch embedder runs its convolutions (conv_impl; default: the device's)")
    parser.add_argument("--checkpoint-embedder", action="store_true",
                        help="recompute eegfm's patch-embedder convolutions in the backward (checkpoint_convs)")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    parser.add_argument("--tag", default="", help="appended to the JSON file name (e.g. run1)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser.parse_args(argv)


def out_path(args, device) -> Path:
    prefix = "pretrain_step" if args.task == "pretrain" else "encoder"
    if args.task == "pretrain":
        prefix += ("_single" if args.single_pass else "") + ("_cached" if args.cached_codes else "")
        prefix += f"_decoder{args.decoder_depth}" if args.decoder_depth else ""
        prefix += f"_visible{args.visible_blocks}" if args.visible_blocks else ""
        prefix += "_vs_labram_masked" if args.labram_step == "masked" else ""
    prefix += "_fulllast" if args.task == "classify" and args.full_last_block else ""
    prefix += "_padded" if args.padded else ""
    prefix += "_fwdbwd" if args.no_optimizer else ""
    prefix += ("_compiled" if args.compile else "") + ("_labramcompiled" if args.compile_labram else "")
    prefix += f"_{args.embedder}embedder" if args.embedder else ""
    prefix += "_ckptembedder" if args.checkpoint_embedder else ""
    prefix += "_cudnnbench" if args.cudnn_benchmark else ""
    tag = f"_{args.tag}" if args.tag else ""
    return args.out / f"{prefix}_throughput_{device.type}_{args.size}_b{args.batch_size}_{args.dtype}{tag}.json"


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.batch_size = args.batch_size or (128 if device.type == "cuda" else 8)
    args.dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = args.cudnn_benchmark

    inputs = make_inputs(args, device)
    ours, labram = build_models(args, len(inputs.ch_names), inputs.n_times, device)
    models = contenders(args, ours, labram, inputs)
    ours_name = next(iter(models))
    compiled = {ours_name: args.compile, LABRAM: args.compile_labram}
    steps = {name: make_step(m, call, device, args.dtype, args.adamw == "fused", optimizer=not args.no_optimizer,
                             compile_mode=args.compile_mode if compiled[name] else None,
                             compile_backend=args.compile_backend)
             for name, (m, call) in models.items()}
    if args.memory_arm:  # a child of --memory: this arm's steps only, then its peak RSS growth
        before = _max_rss()
        time_steps(steps[ours_name if args.memory_arm == "ours" else LABRAM], args.warmup + 1, device)
        print(json.dumps({"peak_rss_growth_GiB": round((_max_rss() - before) / 2**30, 3)}))
        return {}
    flops = {name: step_flops(m, call) / args.batch_size for name, (m, call) in models.items()} if args.flops else {}
    peak, times, compile_s = {}, {name: [] for name in models}, {}
    for name, step in steps.items():  # warm-up (and compilation) and peak memory, one model at a time
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if compiled[name]:  # the first step compiles: timed apart, on the wall clock
            compile_s[name] = sum(time_steps(step, 1, device))
            print(f"{name}: first (compiling) step {compile_s[name]:.1f} s")
        time_steps(step, args.warmup, device)
        if device.type == "cuda":
            peak[name] = torch.cuda.max_memory_allocated() / 2**30
    if args.memory and device.type == "cpu":
        child = [a for a in argv if a != "--memory"]
        peak = {ours_name: peak_rss_growth(child, "ours"), LABRAM: peak_rss_growth(child, "labram")}
    args.clock = args.clock or ("wall" if device.type == "cuda" else "process")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    for _ in range(args.rounds):  # alternating rounds: drift hits both alike
        for name, step in steps.items():
            times[name] += time_steps(step, args.steps, device, clock)

    results = {}
    for name, (model, _) in models.items():
        median = statistics.median(times[name])
        results[name] = {
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "step_s_median": round(median, 5),
            "tokens_per_s": round(inputs.tokens / median, 1),
            "peak_memory_GiB": round(peak[name], 3) if name in peak else None,
            "compiled": compiled[name],
            "first_step_s": round(compile_s[name], 1) if name in compile_s else None,
            "gflop_per_sample": round(flops[name] / 1e9, 3) if name in flops else None,
        }
    labram_core = labram.labram if isinstance(labram, LabramMasked) else labram
    results[LABRAM]["width"] = labram_core.embed_dim
    results[ours_name]["width"] = SIZES[args.size][0]
    ratio = results[ours_name]["tokens_per_s"] / results[LABRAM]["tokens_per_s"]
    what = {
        "batch": (f"mixed caps {inputs.chans} zero-padded to {len(inputs.ch_names)} channels; eegfm masks the padding, "
                  "Labram (no mask) attends over it; tokens/s counts real tokens") if args.padded
        else f"{len(inputs.ch_names)} channels per sample",
        LABRAM: (f"LaBraM-style masked step: {args.mask_ratio:.0%} random tokens zeroed, patch tokens, code head on "
                 "the masked tokens, cross-entropy (no symmetric second pass)")
        if isinstance(labram, LabramMasked) else "classification forward + backward (its CLS token)",
        "eegfm": None if args.task == "pretrain" else
        ("classification forward + backward, every token through every block (encoder(...).cls)"
         if args.full_last_block else
         "classification forward + backward, the last block on the CLS token alone (forward_cls)"),
        "labram_size": f"width {labram_core.embed_dim} (asked {SIZES[args.size][0]}), "
                       f"{results[LABRAM]['params_M']} M params",
        "peak_memory": ("torch.cuda.max_memory_allocated over the warm-up" if device.type == "cuda" else
                        "growth of the peak RSS (VmHWM) over models and inputs, one subprocess per model" if args.memory
                        else None),
    }
    report = {
        "benchmark": "encoder_throughput",
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "what": what,
        "tokens_per_step": inputs.tokens,
        "results": results,
        "speedup_tokens_per_s": round(ratio, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = out_path(args, device)
    path.write_text(json.dumps(report, indent=2) + "\n")
    for key in ("batch", "eegfm", LABRAM, "labram_size"):
        if what[key]:
            print(f"{key}: {what[key]}")
    for name, r in results.items():
        mem = f", peak {r['peak_memory_GiB']:.2f} GiB" if r["peak_memory_GiB"] is not None else ""
        work = f", {r['gflop_per_sample']:.2f} GFLOP/sample" if r["gflop_per_sample"] is not None else ""
        print(f"{name:30s} {r['tokens_per_s']:>12,.0f} tokens/s  ({r['step_s_median'] * 1e3:.1f} ms/step{mem}{work})")
    print(f"{ours_name} / Labram tokens/s: {ratio:.2f}x   -> {path}")
    return report


if __name__ == "__main__":
    main()
