"""Peak memory of the codebook lookup: eegfm's chunked matmul+argmax vs a naive ``torch.cdist``.

Each method runs in a fresh subprocess that builds N l2-normalised 32-d vectors and a K-code
codebook, then finds every vector's nearest code; the peak resident memory above the inputs
is reported (on CUDA: ``torch.cuda.max_memory_allocated``). The naive lookup materialises an
(N, K) distance matrix (N * K * 4 bytes: 32 GB at N=1M, K=8192), so it is measured at the
largest N the machine holds (``--naive-n``) and its size at N is given by that formula.

    python benchmarks/vq_lookup_memory.py                       # N=1M, K=8192 (naive at N=100k)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

WORKER = r"""
import resource, sys, time, torch
method, n, k, d, device = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
z = torch.nn.functional.normalize(torch.randn(n, d, device=device), dim=1)
codebook = torch.nn.functional.normalize(torch.randn(k, d, device=device), dim=1)
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
if method == "eegfm":
    from eegfm.modules.quantizer import EMAVectorQuantizer
    vq = EMAVectorQuantizer(num_codes=k, code_dim=d).to(device)
    vq.codebook.copy_(codebook)
    codes = vq.nearest(z)
else:
    codes = torch.cdist(z, codebook).argmin(1)
if device == "cuda":
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - base
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
print(peak, time.perf_counter() - start, int(codes[:1000].sum()))
"""


def measure(method: str, n: int, k: int, d: int, device: str) -> dict:
    out = subprocess.run([sys.executable, "-c", WORKER, method, str(n), str(k), str(d), device],
                         capture_output=True, text=True, check=True)
    peak, seconds, checksum = out.stdout.split()
    return {"method": method, "N": n, "K": k, "peak_extra_GiB": round(int(peak) / 2**30, 3),
            "seconds": round(float(seconds), 3), "checksum": int(checksum)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--naive-n", type=int, default=100_000, help="N for torch.cdist (its (N, K) matrix must fit)")
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    ours = measure("eegfm", args.n, args.k, args.d, args.device)
    ours_small = measure("eegfm", args.naive_n, args.k, args.d, args.device)
    naive = measure("cdist", args.naive_n, args.k, args.d, args.device)
    same_codes = ours_small["checksum"] == naive["checksum"]
    report = {
        "benchmark": "vq_lookup_memory",
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "eegfm_at_N": ours,
        "eegfm_at_naive_N": ours_small,
        "cdist_at_naive_N": naive,
        "cdist_distance_matrix_GiB_at_N": round(args.n * args.k * 4 / 2**30, 2),
        "same_codes_at_naive_N": same_codes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"vq_lookup_memory_{args.device}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"eegfm chunked lookup, N={args.n:,} K={args.k}: {ours['peak_extra_GiB']:.2f} GiB extra, {ours['seconds']:.1f} s")
    print(f"at N={args.naive_n:,}: eegfm {ours_small['peak_extra_GiB']:.2f} GiB vs torch.cdist {naive['peak_extra_GiB']:.2f} GiB "
          f"(same codes: {same_codes}); cdist's (N, K) matrix alone at N={args.n:,}: "
          f"{report['cdist_distance_matrix_GiB_at_N']:.1f} GiB  -> {path}")
    return report


if __name__ == "__main__":
    main()
