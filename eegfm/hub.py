"""Hugging Face Hub integration for eegfm models.

Every eegfm model class mixes in :class:`HubMixin`, built on huggingface_hub's
``PyTorchModelHubMixin``, so it has ``save_pretrained``, ``from_pretrained`` and
``push_to_hub``. What this module changes on top of the mixin:

- weights are read and written as ``model.safetensors`` only (never a pickle);
- ``config.json`` holds every constructor argument (JSON-safe: :meth:`HubMixin.get_config`),
  ``model_class``, the class that saved it, and ``config_version``, its layout
  (:data:`CONFIG_VERSION`; a folder of an older layout is converted by the class's
  :meth:`HubMixin.upgrade_config`); an unknown key in it, or another class, is an error instead
  of being silently ignored;
- ``README.md`` is eegfm's model card (:mod:`eegfm.model_card`), not the mixin's boilerplate:
  ``save_pretrained(folder, card=ModelCardFacts(...))`` or ``model.card_facts = ...``;
- loading is strict by default: a missing or unexpected weight is an error that names them and
  the file (models on huggingface_hub's own loading path, like the braindecode wrapper, get
  the same check from :class:`StrictLoadingMixin`);
- a repo that cannot be found, a file that is missing, or offline mode without a cached copy
  each give an :class:`ModelLoadError` that says what was tried and what to do.

Example
-------
>>> from eegfm import MAPEEncoder
>>> model = MAPEEncoder(embed_dim=32, depth=1, num_heads=2, patch_size=16)
>>> model.save_pretrained("my-encoder")                    # doctest: +SKIP
>>> same = MAPEEncoder.from_pretrained("my-encoder")       # doctest: +SKIP
>>> model.push_to_hub("me/my-encoder")                     # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download

from .model_card import BASE_TAGS, DOCS_URL, LICENSE, PROJECT_URL, ModelCardMixin

try:  # huggingface_hub >= 0.24
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
except ImportError:  # pragma: no cover - older huggingface_hub
    from huggingface_hub.utils import (  # type: ignore[no-redef]
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

__all__ = ["CONFIG_NAME", "CONFIG_VERSION", "CONFIG_VERSION_KEY", "MODEL_CLASS_KEY", "WEIGHTS_NAME", "HubMixin", "ModelLoadError",
           "StrictDiffusersLoadingMixin", "StrictLoadingMixin", "hub_card"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Key of ``config.json`` naming the class that saved it (not a constructor argument).
MODEL_CLASS_KEY = "model_class"
#: Key of ``config.json`` giving its layout version (absent: version 1, the layout before it existed).
CONFIG_VERSION_KEY = "config_version"
#: The layout ``save_pretrained`` writes. 2: a composite model's encoder settings nested under ``"encoder"``.
CONFIG_VERSION = 2


def hub_card() -> dict:
    """Model-card metadata for an eegfm model class: ``class M(nn.Module, HubMixin, **hub_card())``.

    The project's links and licence (from the installed package's metadata, i.e.
    ``pyproject.toml``). A fresh dict each call: huggingface_hub appends to the ``tags`` list
    it is given.
    """
    return dict(library_name="eegfm", tags=list(BASE_TAGS), repo_url=PROJECT_URL, docs_url=DOCS_URL,
                license=LICENSE)


class ModelLoadError(OSError):
    """A model's config or weights could not be found or did not match the model class."""


def read_config_file(config_file: Path) -> dict:
    """The constructor arguments saved in ``config_file`` (a ``config.json``), or a one-line ModelLoadError."""
    try:
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{config_file} is not valid JSON ({err}); re-save the model or fix the file") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_file} must hold a JSON object of constructor arguments, "
                             f"got {type(config).__name__}; re-save the model or fix the file")
    return config


def pop_config_version(config: dict, config_file) -> int:
    """Remove and return ``config``'s layout version (1 when absent), or raise a one-line ModelLoadError."""
    version = config.pop(CONFIG_VERSION_KEY, 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelLoadError(f"{config_file}: {CONFIG_VERSION_KEY}={version!r} is not a layout version (a positive "
                             "int); re-save the model or fix the file")
    if version > CONFIG_VERSION:
        raise ModelLoadError(f"{config_file} has {CONFIG_VERSION_KEY}={version}, a layout newer than this eegfm "
                             f"reads ({CONFIG_VERSION}); upgrade eegfm (pip install -U eegfm)")
    return version


def _download(repo_id: str, filename: str, **kwargs) -> str:
    """Fetch one file of a Hub repo (or its cached copy), turning Hub errors into advice."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").upper() in {"1", "ON", "YES", "TRUE"}
    # LocalEntryNotFoundError subclasses EntryNotFoundError: it must be caught first.
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, **kwargs)
    except HFValidationError as err:
        raise ModelLoadError(
            f"{repo_id!r} is neither an existing local directory nor a valid Hub repo id "
            "('owner/name'). Pass the directory written by save_pretrained(), or a repo id."
        ) from err
    except RepositoryNotFoundError as err:
        raise ModelLoadError(
            f"Hub repo {repo_id!r} was not found (or it is private: pass token=...). "
            "Check the repo id, or pass a local directory written by save_pretrained()."
        ) from err
    except GatedRepoError as err:
        raise ModelLoadError(
            f"Hub repo {repo_id!r} is gated: accept its terms on the Hub and pass token=..."
        ) from err
    except RevisionNotFoundError as err:
        raise ModelLoadError(
            f"Revision {kwargs.get('revision')!r} of Hub repo {repo_id!r} does not exist."
        ) from err
    except LocalEntryNotFoundError as err:
        why = (
            "offline mode is on (HF_HUB_OFFLINE=1)" if offline or kwargs.get("local_files_only")
            else "the Hub could not be reached"
        )
        raise ModelLoadError(
            f"{filename!r} of {repo_id!r} is not in the local Hugging Face cache and {why}. "
            f"Download it once while online (`hf download {repo_id}`), point cache_dir= at a "
            "cache that holds it, or pass a local directory written by save_pretrained()."
        ) from err
    except EntryNotFoundError as err:
        raise ModelLoadError(
            f"Hub repo {repo_id!r} has no {filename!r}: it is not an eegfm model saved with "
            "save_pretrained()/push_to_hub() (eegfm reads safetensors weights only)."
        ) from err
    except HfHubHTTPError as err:
        raise ModelLoadError(f"Could not download {filename!r} of {repo_id!r}: {err}") from err


def _summarize_keys(missing, unexpected, shapes=()) -> str:
    """``missing 24 (e.g. 'a', 'b', 'c', ...), unexpected 1 ('d')`` rather than 60 lines of names."""
    def part(what, keys):
        keys = list(keys)
        if not keys:
            return f"{what} 0"
        if len(keys) <= 3:
            return f"{what} {len(keys)} ({', '.join(map(repr, keys))})"
        return f"{what} {len(keys)} (e.g. {', '.join(map(repr, keys[:3]))}, ...)"
    text = f"{part('missing', missing)}, {part('unexpected', unexpected)}"
    return text + (f", {part('of another shape', shapes)}" if shapes else "")


def _check_weights_fit(skeleton: torch.nn.Module, weights_file: Path) -> None:
    """Compare a (meta-device) model's state with the safetensors header, reading no tensor data."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights_file), framework="pt") as handle:
            saved = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as err:
        raise ModelLoadError(f"{weights_file} is not a readable safetensors file ({err}); "
                             "re-download or re-save the model") from None
    expected = {key: tuple(t.shape) for key, t in skeleton.state_dict().items()}
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    shapes = [f"{k} {saved[k]} vs {expected[k]}" for k in expected if k in saved and saved[k] != expected[k]]
    if missing or unexpected or shapes:
        raise ModelLoadError(
            f"Weights in {weights_file} do not fit {type(skeleton).__name__} built from its config: "
            f"{_summarize_keys(missing, unexpected, shapes)}. Is config.json from the same model? Pass "
            "strict=False to load the matching part."
        )


def _apply_state(model: torch.nn.Module, state: dict, weights_file, *, strict: bool) -> None:
    """``model.load_state_dict(state)``; when ``strict``, a missing or unexpected key is a one-line
    :class:`ModelLoadError` naming the keys and the file (torch's error spans many lines)."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a weight of another shape: torch lists them over several lines
        details = " ".join(line.strip() for line in str(err).splitlines()[1:]) or str(err)
        raise ModelLoadError(f"Weights in {weights_file} do not fit {type(model).__name__}: {details} "
                             "Is config.json from the same model?") from None
    if strict and (missing or unexpected):
        raise ModelLoadError(
            f"Weights in {weights_file} do not match {type(model).__name__}: "
            f"{_summarize_keys(missing, unexpected)}. Pass strict=False to "
            "load the matching part (e.g. when you changed the head)."
        )


def _load_safetensors(model: torch.nn.Module, weights_file, *, map_location: str, strict: bool) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights_file), device=str(map_location))
    except Exception as err:  # safetensors raises its own error types without the file name
        raise ModelLoadError(f"{weights_file} is not a readable safetensors file ({err}); "
                             "re-download or re-save the model") from None
    _apply_state(model, state, weights_file, strict=strict)


class StrictLoadingMixin:
    """Strict ``from_pretrained`` for models loaded by huggingface_hub's own ``_from_pretrained``.

    huggingface_hub's ``PyTorchModelHubMixin`` (and braindecode's ``EEGModuleMixin`` on top
    of it) load with ``strict=False`` by default, so a checkpoint whose keys do not match
    loads silently with random weights. Put this class first in the bases: ``strict`` is then
    True by default, and a mismatch is a one-line :class:`ModelLoadError` naming the keys and
    the file.
    """

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs):
        return super()._from_pretrained(strict=strict, **kwargs)

    @classmethod
    def _load_as_safetensor(cls, model, model_file, map_location, strict):
        _load_safetensors(model, model_file, map_location=map_location, strict=strict)
        return model.eval()

    @classmethod
    def _load_as_pickle(cls, model, model_file, map_location, strict):
        state = torch.load(model_file, map_location=torch.device(map_location), weights_only=True)
        _apply_state(model, state, model_file, strict=strict)
        return model.eval()


class StrictDiffusersLoadingMixin:
    """Strict ``from_pretrained`` for diffusers models (``ModelMixin``): eegfm_video's.

    diffusers only logs weights that are missing from a checkpoint (and initialises them at
    random) or left unused. Put this class first in the bases: ``from_pretrained(...,
    strict=True)`` (the default) then raises a one-line :class:`ModelLoadError` naming the keys
    and the folder. ``output_loading_info=True`` still returns ``(model, info)``.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, strict: bool = True, **kwargs):
        wants_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True,
                                              **kwargs)
        missing, unexpected = list(info.get("missing_keys") or []), list(info.get("unexpected_keys") or [])
        shapes = [f"{key} {tuple(saved)} vs {tuple(expected)}"
                  for key, saved, expected in info.get("mismatched_keys") or []]
        if strict and (missing or unexpected or shapes):
            where = Path(str(pretrained_model_name_or_path))
            if kwargs.get("subfolder"):
                where = where / kwargs["subfolder"]
            raise ModelLoadError(
                f"Weights in {where} do not match {cls.__name__}: {_summarize_keys(missing, unexpected, shapes)}. "
                "Pass strict=False to load the matching part."
            )
        return (model, info) if wants_info else model


class HubMixin(ModelCardMixin, PyTorchModelHubMixin):
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for eegfm models.

    Subclasses take JSON-safe constructor arguments: :meth:`get_config` returns them and
    ``config.json`` holds them. A model whose constructor resolves an argument (a default filled
    in) or whose state changes one later (a new head) overrides :meth:`get_config`; one whose
    saved layout changed overrides :meth:`upgrade_config` and, when it takes keyword arguments
    through ``**fields``, :meth:`config_keys`.
    """

    @classmethod
    def config_keys(cls) -> list[str]:
        """The keyword arguments the constructor takes (what ``config.json`` and ``from_pretrained``
        overrides may set)."""
        params = inspect.signature(cls.__init__).parameters
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [name for name, p in params.items() if name != "self" and p.kind in kinds]

    @classmethod
    def upgrade_config(cls, config: dict, version: int) -> dict:
        """Constructor arguments saved in layout ``version`` (see :data:`CONFIG_VERSION`), in
        today's layout. Unchanged by default."""
        return config

    def get_config(self) -> dict:
        """The JSON-safe constructor arguments that rebuild this model as it is now (``config.json``
        holds them, ``model_class`` and ``config_version``).

        By default the arguments it was built with, defaults included (huggingface_hub's mixin
        records them).
        """
        return json.loads(json.dumps(dict(self._hub_mixin_config or {})))

    def save_pretrained(self, save_directory, *, config: dict | None = None, **kwargs):
        """Write ``config.json`` (:meth:`get_config` + ``model_class`` + ``config_version``),
        ``model.safetensors`` and ``README.md`` (the model card: pass ``card=ModelCardFacts(...)``,
        or set ``model.card_facts``; see :mod:`eegfm.model_card`)."""
        if config is None:
            config = {**self.get_config(), MODEL_CLASS_KEY: type(self).__name__, CONFIG_VERSION_KEY: CONFIG_VERSION}
        return super().save_pretrained(save_directory, config=config, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        **config_overrides,
    ):
        """Load a model from a local directory or a Hugging Face Hub repo.

        Parameters
        ----------
        pretrained_model_name_or_path : str | Path
            A directory written by :meth:`save_pretrained`, or a Hub repo id ``"owner/name"``.
        revision, cache_dir, force_download, local_files_only, token
            As in :func:`huggingface_hub.hf_hub_download`. With ``HF_HUB_OFFLINE=1`` only the
            local cache is read.
        map_location : str
            Device the weights are loaded onto.
        strict : bool
            Fail when the weights and the model's parameters do not match exactly (default).
        **config_overrides
            Constructor arguments that replace the saved ones (e.g. ``dropout=0.1``).

        Returns
        -------
        model
            The model in eval mode.
        """
        source = str(pretrained_model_name_or_path)
        if os.path.isdir(source):
            config_file = Path(source) / CONFIG_NAME
            weights_file = Path(source) / WEIGHTS_NAME
            for path in (config_file, weights_file):
                if not path.is_file():
                    raise ModelLoadError(
                        f"{path} does not exist: {source!r} is not a directory written by "
                        f"{cls.__name__}.save_pretrained() (it needs {CONFIG_NAME} and {WEIGHTS_NAME})."
                    )
        else:
            hub = dict(revision=revision, cache_dir=cache_dir, force_download=force_download,
                       local_files_only=local_files_only, token=token)
            config_file = Path(_download(source, CONFIG_NAME, **hub))
            weights_file = Path(_download(source, WEIGHTS_NAME, **hub))

        config = read_config_file(config_file)
        saved_class = config.pop(MODEL_CLASS_KEY, None)
        if saved_class is not None and saved_class not in {base.__name__ for base in cls.__mro__}:
            raise ModelLoadError(
                f"{config_file} holds a {saved_class}, not a {cls.__name__}: load it with "
                f"{saved_class}.from_pretrained({source!r})."
            )
        config = cls.upgrade_config(config, pop_config_version(config, config_file))
        known = set(cls.config_keys())
        unknown_saved = sorted(set(config) - known)
        if unknown_saved:
            raise ModelLoadError(
                f"{config_file} has keys {unknown_saved} that {cls.__name__} does not take: it was "
                f"saved by another model class or a newer eegfm. Known keys: {sorted(known)}."
            )
        unknown_overrides = sorted(set(config_overrides) - known)
        if unknown_overrides:
            raise TypeError(
                f"{cls.__name__}.from_pretrained got unknown arguments {unknown_overrides}; "
                f"it takes the constructor arguments {sorted(known)}."
            )
        arguments = {**config, **config_overrides}
        try:  # first on the meta device: costs no memory, so a bad config fails before a huge model is built
            with torch.device("meta"):
                skeleton = cls(**arguments)
        except (TypeError, ValueError) as err:
            raise ModelLoadError(f"{config_file}: cannot build {cls.__name__} from it: {err}") from None
        if strict:
            _check_weights_fit(skeleton, weights_file)
        del skeleton
        model = cls(**arguments)
        cls._load_weights(model, weights_file, map_location=map_location, strict=strict)
        return model.eval()

    @staticmethod
    def _load_weights(model, weights_file: Path, *, map_location: str, strict: bool) -> None:
        _load_safetensors(model, weights_file, map_location=map_location, strict=strict)
