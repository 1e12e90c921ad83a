"""Pool finished ``benchmarks/downstream.py`` calls by seed, and compare two of the pooled models.

A harness call's work dir (its cached rows) often does not outlive the session that ran it, but
its ``downstream.json`` does, and it already holds, per seed, the harness's primary figure (the
test predictions of every fold pooled), its AUROC, its channel-drop curve and every (fold, seed)
row. So seeds run by separate calls (another day, another machine) can be put together from the
committed JSONs alone. An *arm* is one model of one or more calls; its seeds are the union of the
calls' seeds. This script:

- refuses a call that stopped before its last fold (``"partial": true``), one whose folds differ
  from the other calls' (other subjects per fold cannot be pooled), and a seed that two calls of
  one arm report with different figures;
- refuses an arm whose calls used different pre-trained encoders (another pre-training run is
  another arm, not more seeds);
- writes per arm the per-seed figures with mean +- std, the validation figure (each fold's
  validation subjects, mean over folds: what a choice between recipes may look at) and the mean
  over seeds per fold; and per ``--pair A-B`` the harness's paired comparison over the seeds both
  arms have (differences, t-test and Wilcoxon p), for balanced accuracy, AUROC and each
  channel-drop level.

A recipe is judged over several pre-training runs, not one: ``--runs NAME=A+B+C`` makes an arm
whose figure per seed is the mean over the pre-training runs A, B, C (arms given by ``--arm``) on
the seeds every run has. Paired with another arm it also reports every run x seed pair.

    python benchmarks/pool_downstream.py --task mi \\
        --arm pretrained=runA:eegfm_pretrained,runB:eegfm_pretrained \\
        --arm scratch=runC:eegfm_scratch,runD:eegfm_scratch \\
        --pair pretrained-scratch --out pooled.json
    # three pre-training runs of one recipe, each its own arm, judged together:
    python benchmarks/pool_downstream.py --task mi --arm run0=... --arm run1=... --arm run2=... \\
        --arm scratch=... --runs recipe=run0+run1+run2 --pair recipe-scratch --out pooled.json

``runA`` etc. are folders holding a ``downstream.json`` (or the JSON files themselves).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from downstream import paired, summarize  # noqa: E402

FOLD_KEYS = ("fold", "test", "val", "train")


def _report_path(path: str) -> Path:
    p = Path(path)
    return p / "downstream.json" if p.is_dir() else p


def load_call(path: str, task: str) -> dict:
    """One finished call's report: ``{"path", "folds", "encoder", "results"}`` for ``task``.

    Raises ``SystemExit`` with a one-line reason when the file is missing, partial or lacks ``task``.
    """
    file = _report_path(path)
    if not file.is_file():
        raise SystemExit(f"{path}: no downstream.json there (give a harness --out folder or its JSON file)")
    report = json.loads(file.read_text())
    if report.get("partial"):
        raise SystemExit(f"{path}: the call stopped before its last fold (partial); finish it with --reuse "
                         "or leave it out")
    if task not in report.get("results", {}):
        raise SystemExit(f"{path}: no results for task {task!r} (it has {sorted(report.get('results', {}))})")
    folds = [{k: fold[k] for k in FOLD_KEYS} for fold in report.get("folds", {}).get(task, [])]
    encoder = (report.get("encoder") or {}).get("fingerprint")
    return {"path": path, "folds": folds, "encoder": encoder, "results": report["results"][task]}


def parse_arm(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``"name=path:model,path:model"`` -> ``(name, [(path, model), ...])``."""
    name, sep, calls = text.partition("=")
    if not sep or not name or not calls:
        raise SystemExit(f"--arm {text!r}: expected NAME=PATH:MODEL[,PATH:MODEL...]")
    out = []
    for item in calls.split(","):
        path, sep, model = item.rpartition(":")
        if not sep or not path or not model:
            raise SystemExit(f"--arm {text!r}: {item!r} is not PATH:MODEL (e.g. out/run1:eegfm_scratch)")
        out.append((path, model))
    return name, out


def _merge(target: dict, values: dict, what: str, path: str) -> None:
    for seed, value in values.items():
        if seed in target and abs(target[seed] - value) > 1e-12:
            raise SystemExit(f"{what}: seed {seed} appears twice with different figures ({target[seed]:.6f} "
                             f"vs {value:.6f} in {path}); one of the calls is another run")
        target[seed] = value


def pool_arm(name: str, calls: list[tuple[str, str]], task: str, reference_folds: list | None) -> tuple[dict, list]:
    """``(per-seed figures of one arm, its folds)`` from its calls (see the module docstring for the checks)."""
    pooled = {"balanced_accuracy": {}, "auroc": {}, "fold_mean_balanced_accuracy": {}, "validation": {}}
    drops: dict[str, dict] = {}
    fold_rows: dict[str, float] = {}  # "fold/seed" -> test balanced accuracy (a seed in two calls counts once)
    encoders = set()
    for path, model in calls:
        call = load_call(path, task)
        if reference_folds is not None and call["folds"] != reference_folds:
            raise SystemExit(f"{path}: its folds differ from the first call's (other subjects per fold); "
                             "only calls with the same --folds/--test-subjects/--fold-seed can be pooled")
        reference_folds = call["folds"]
        if model not in call["results"]:
            raise SystemExit(f"{path}: no model {model!r} (it has {sorted(call['results'])})")
        result = call["results"][model]
        if model.startswith("eegfm_") and model != "eegfm_scratch":
            encoders.add(call["encoder"])
        agg = result["aggregate"]
        _merge(pooled["balanced_accuracy"], agg["balanced_accuracy"]["per_seed"], name, path)
        _merge(pooled["auroc"], agg["auroc"]["per_seed"], name, path)
        _merge(pooled["fold_mean_balanced_accuracy"], agg["fold_mean"]["balanced_accuracy"]["per_seed"], name, path)
        for level, stat in result.get("channel_drop", {}).items():
            _merge(drops.setdefault(level, {}), stat["per_seed"], f"{name} channel drop {level}", path)
        validation: dict[str, list[float]] = {}
        for row in result["rows"]:
            if str(row["seed"]) not in agg["balanced_accuracy"]["per_seed"]:
                continue  # a seed that did not finish every fold in this call
            validation.setdefault(str(row["seed"]), []).append(row["valid"]["balanced_accuracy"])
        _merge(pooled["validation"], {s: float(np.mean(v)) for s, v in validation.items()}, name, path)
        _merge(fold_rows, {f"{row['fold']}/{row['seed']}": row["test"]["balanced_accuracy"] for row in result["rows"]
                           if str(row["seed"]) in agg["balanced_accuracy"]["per_seed"]}, name, path)
    if len(encoders) > 1:
        raise SystemExit(f"arm {name}: its calls used {len(encoders)} different pre-trained encoders "
                         f"({sorted(map(str, encoders))}); another pre-training run is another arm")

    per_fold: dict[int, list[float]] = {}
    for key, value in fold_rows.items():
        per_fold.setdefault(int(key.split("/")[0]), []).append(value)
    arm = {
        "calls": [f"{p}:{m}" for p, m in calls],
        "encoder": next(iter(encoders), None),
        **{key: _stat(values) for key, values in pooled.items()},
        "channel_drop": {level: _stat(values) for level, values in sorted(drops.items())},
        "per_fold_mean_over_seeds": {str(f): float(np.mean(v)) for f, v in sorted(per_fold.items())},
    }
    return arm, reference_folds


def _stat(values: dict) -> dict:
    ordered = dict(sorted(values.items(), key=lambda kv: int(kv[0])))
    return {**summarize(list(ordered.values())), "per_seed": ordered}


def pool_runs(name: str, members: list[str], arms: dict) -> dict:
    """An arm whose per-seed figures are the mean over pre-training runs ``members`` (arms of ``arms``).

    Only seeds every run has count. Raises ``SystemExit`` for an unknown run, a run named twice,
    fewer than two runs, or runs that share no seed.
    """
    if len(members) < 2 or len(set(members)) != len(members):
        raise SystemExit(f"--runs {name}: name two or more different arms, got {members}")
    unknown = [m for m in members if m not in arms]
    if unknown:
        raise SystemExit(f"--runs {name}: {unknown} are not arms (the arms are {sorted(arms)}); give each run "
                         "with --arm first")
    runs = [arms[m] for m in members]
    seeds = set.intersection(*(set(r["balanced_accuracy"]["per_seed"]) for r in runs))
    if not seeds:
        raise SystemExit(f"--runs {name}: the runs {members} share no seed")

    def mean_over_runs(get) -> dict:
        return _stat({s: float(np.mean([get(r)["per_seed"][s] for r in runs])) for s in seeds})

    levels = set.intersection(*(set(r["channel_drop"]) for r in runs))
    return {
        "runs": list(members),
        "encoders": [r["encoder"] for r in runs],
        **{metric: mean_over_runs(lambda r, m=metric: r[m]) for metric in ("balanced_accuracy", "auroc", "validation")},
        "channel_drop": {lv: mean_over_runs(lambda r, lv=lv: r["channel_drop"][lv]) for lv in sorted(levels)},
        "per_run": {m: arms[m]["balanced_accuracy"]["mean"] for m in members},
        "per_run_per_seed": {m: arms[m]["balanced_accuracy"]["per_seed"] for m in members},
    }


def run_seed_pairs(a: dict, b: dict) -> dict:
    """Every (pre-training run of ``a``, seed) against ``b``'s same seed: balanced accuracy differences."""
    diffs = [value - b["balanced_accuracy"]["per_seed"][seed]
             for run in a["per_run_per_seed"].values() for seed, value in run.items()
             if seed in b["balanced_accuracy"]["per_seed"]]
    return {**summarize(diffs), "n_better": int(sum(d > 0 for d in diffs)), "differences": diffs}


def compare(a: dict, b: dict) -> dict:
    """Paired a - b over the seeds both have: balanced accuracy, AUROC, validation, each channel-drop level.

    When ``a`` pools pre-training runs (``--runs``) it also gives every run x seed pair (``run_seed_pairs``).
    """
    out = {metric: paired(a[metric]["per_seed"], b[metric]["per_seed"])
           for metric in ("balanced_accuracy", "auroc", "validation")}
    out["channel_drop"] = {level: paired(a["channel_drop"][level]["per_seed"], b["channel_drop"][level]["per_seed"])
                           for level in a["channel_drop"] if level in b["channel_drop"]}
    if "per_run_per_seed" in a:
        out["run_seed_pairs"] = run_seed_pairs(a, b)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", required=True, help="the harness task, e.g. mi or ma")
    p.add_argument("--arm", action="append", required=True, help="NAME=PATH:MODEL[,PATH:MODEL...] (repeat)")
    p.add_argument("--runs", action="append", default=[],
                   help="NAME=A+B[+C...]: an arm averaging pre-training runs A, B, ... (arms) per seed (repeat)")
    p.add_argument("--pair", action="append", default=[], help="A-B: compare arm A with arm B per seed (repeat)")
    p.add_argument("--out", help="write the pooled JSON here (default: print only)")
    args = p.parse_args(argv)
    arms, folds = {}, None
    for text in args.arm:
        name, calls = parse_arm(text)
        if name in arms:
            raise SystemExit(f"--arm {name} is given twice")
        arms[name], folds = pool_arm(name, calls, args.task, folds)
    for text in args.runs:
        name, sep, members = text.partition("=")
        if not sep or not name or not members:
            raise SystemExit(f"--runs {text!r}: expected NAME=ARM+ARM[+ARM...]")
        if name in arms:
            raise SystemExit(f"--runs {name}: the name is already an arm")
        arms[name] = pool_runs(name, members.split("+"), arms)
    pairs = {}
    for text in args.pair:
        a, sep, b = text.partition("-")
        if not sep or a not in arms or b not in arms:
            raise SystemExit(f"--pair {text!r}: expected A-B with A and B among the arms {sorted(arms)}")
        pairs[text] = compare(arms[a], arms[b])
    report = {"task": args.task, "metric": "test balanced accuracy of the folds' predictions pooled, per seed "
              "(the harness's primary figure); validation: each fold's validation subjects, mean over folds",
              "folds": folds, "arms": arms, "pairs": pairs}
    for name, arm in arms.items():
        ba, au = arm["balanced_accuracy"], arm["auroc"]
        print(f"{name:<16} balanced acc {ba['mean']:.3f} ± {ba['std']:.3f} (n={ba['n']}), AUROC {au['mean']:.3f}, "
              f"validation {arm['validation']['mean']:.3f}; channel drop "
              + " / ".join(f"{lv}: {s['mean']:.3f}" for lv, s in arm["channel_drop"].items()))
    for text, cmp in pairs.items():
        d = cmp["balanced_accuracy"]
        print(f"{text}: paired {d['mean']:+.3f} ± {d['std']:.3f} over seeds {d['seeds']} "
              f"({d['n_better']}/{d['n_seeds']} better, t-test p {d['t_test_p']}); AUROC "
              f"{cmp['auroc']['mean']:+.3f}; validation {cmp['validation']['mean']:+.3f}")
        if "run_seed_pairs" in cmp:
            rs = cmp["run_seed_pairs"]
            print(f"{text}: run x seed pairs {rs['mean']:+.3f} ± {rs['std']:.3f} ({rs['n_better']}/{rs['n']} better)")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
