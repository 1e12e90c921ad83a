"""The run directory of a training command: settings first, never a silent overwrite.

A command refuses a run directory that holds the outputs of an earlier run
(:data:`RUN_OUTPUTS`) unless it continues that run (``--train.resume=true``) or is told to
start over (``--overwrite``: those outputs are deleted just before training); the check comes
before any work (:func:`check_run_dir`). ``run_config.json`` is written (atomically) before
training starts (:func:`start_run`), so a killed run still records its settings; ``--config
run_config.json`` starts a new run from them (:func:`load_config`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .._fsutil import atomic_write
from ..training import distributed as D
from ..training.engine import TrainConfig, check_train_config
from .overrides import ConfigError, apply_mapping, apply_overrides, config_to_dict

__all__ = ["RUN_CONFIG", "RUN_OUTPUTS", "check_run_dir", "load_config", "run_outputs", "start_run"]

RUN_CONFIG = "run_config.json"

#: What the commands write into a run directory; other files there are left alone.
RUN_OUTPUTS = ("checkpoints", "model", "encoder", "tensorboard", RUN_CONFIG, "metrics.csv", "summary.json",
               "evaluation.json", "codebook_usage.png", "plots")


def run_outputs(run_dir) -> list[Path]:
    """The outputs of an earlier run found in ``run_dir`` (empty when there are none)."""
    run_dir = Path(run_dir)  # as the training loop takes it (no ~ expansion)
    return [run_dir / name for name in RUN_OUTPUTS if (run_dir / name).exists() or (run_dir / name).is_symlink()]


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:  # already gone
        pass


def check_run_dir(run_dir, *, resume: bool, overwrite: bool, section: str) -> None:
    """Refuse a ``run_dir`` that holds an earlier run, unless the run continues it or overwrites it.

    Called before any work, so that a refused run fails at once; :func:`start_run` deletes
    (with ``overwrite``) just before training.

    Parameters
    ----------
    run_dir : str | os.PathLike
    resume : bool
        The run continues the one in ``run_dir``.
    overwrite : bool
        ``--overwrite`` was given.
    section : str
        Config section of ``run_dir`` and ``resume`` (``"train"``, ``"finetune"``), for errors.

    Raises
    ------
    FileExistsError
        ``run_dir`` holds an earlier run and neither ``resume`` nor ``overwrite`` is set.
    FileNotFoundError
        ``resume`` is set but ``run_dir`` has no ``checkpoints/last.pt`` to continue.
    ValueError
        Both ``resume`` and ``overwrite`` are set.
    """
    if resume and overwrite:
        raise ValueError(f"--overwrite would delete the run that --{section}.resume=true continues in {run_dir}; "
                         "give one of them")
    checkpoint = Path(run_dir) / "checkpoints" / "last.pt"
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"--{section}.resume=true but {run_dir} has no checkpoint to continue ({checkpoint} "
                                f"is missing); leave out --{section}.resume to start a new run there")
    found = run_outputs(run_dir)
    if found and not (resume or overwrite):
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found)
        remedies = (f"continue it with --{section}.resume=true, or delete it and start again with --overwrite"
                    if checkpoint.is_file() else "it saved no checkpoint: start it again with --overwrite")
        raise FileExistsError(f"run directory {run_dir} already holds a run ({names}): {remedies} "
                              f"(or choose another --{section}.run_dir)")


def start_run(run_dir, config, *, overwrite: bool = False) -> Path:
    """Just before training: delete an earlier run's outputs (``overwrite``), then write ``run_config.json``.

    The main process writes (atomically, so a killed run still records its settings); every
    process of a ``torchrun`` job calls it and waits for it. Returns the ``run_config.json`` path.
    """
    path = Path(run_dir) / RUN_CONFIG
    if D.is_main_process():
        if overwrite:
            for output in run_outputs(run_dir):
                _remove(output)
        text = json.dumps(config_to_dict(config), indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text), mode="w", what="run config",
                     hint="free space or set the run directory to a larger disk")
    D.barrier()
    return path


def _read_run_config(given: str) -> tuple[dict, str]:
    from ..recipes import list_recipes, recipe_path

    path = Path(given).expanduser()
    if path.is_dir():  # the run directory itself
        path = path / RUN_CONFIG
    if not path.is_file() and given in list_recipes():  # a packaged recipe, e.g. eegfm-small
        path = recipe_path(given)
    if not path.is_file():
        raise FileNotFoundError(f"--config {given}: no such file; give the {RUN_CONFIG} of an earlier run "
                                f"(or its run directory), or a packaged recipe ({', '.join(list_recipes())})")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"--config {path} is not valid JSON ({err}); give the {RUN_CONFIG} of an earlier run") \
            from None
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path} holds a {type(values).__name__}, not the settings of a run; "
                          f"give the {RUN_CONFIG} of an earlier run")
    return values, str(path)


def load_config(default, args, *, section: str):
    """The run config: ``default``, then the ``--config`` file's settings, then the ``--key=value`` ones.

    ``<section>.resume`` is never taken from the file: a rerun starts a new run unless
    ``--<section>.resume=true`` is given.
    """
    config = default
    if getattr(args, "config", None):
        values, origin = _read_run_config(args.config)
        config = apply_mapping(config, values, origin=origin, skip=(f"{section}.resume",))
    config = apply_overrides(config, args.overrides)
    train = getattr(config, section, None)
    if isinstance(train, TrainConfig):
        check_train_config(train)  # a bad setting fails now, not after the data is read
    return config
