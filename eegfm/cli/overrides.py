"""Typed run configs from ``--key=value`` command-line overrides.

A run config is a (nested) dataclass; each field is set with ``--name=value`` and a nested
one with ``--section.name=value`` (``--train.steps=500``, ``--model.num_codes=1024``).
Values are parsed by the field's type (int, float, str, bool, optional, tuples/lists as
comma-separated values). An unknown key is an error that says which keys exist and which
one was probably meant.

Each setting's help text is the comment beside its dataclass field (or the field's
``metadata["help"]``): :func:`field_help`. :func:`apply_mapping` reads a saved config
(``run_config.json``) back onto a config.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import shutil
import textwrap
import tokenize
import types
import typing
from collections.abc import Mapping, Sequence

from .._validation import did_you_mean

__all__ = ["ConfigError", "add_config_parser", "apply_mapping", "apply_overrides", "config_keys", "config_to_dict",
           "describe", "field_help"]

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A bad ``--key=value`` override."""


def _fields(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _keys(config, prefix="") -> list[str]:
    keys = []
    for name, kind in _fields(type(config)).items():
        value = getattr(config, name)
        if dataclasses.is_dataclass(value):
            keys += _keys(value, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _parse(text: str, kind, key: str, current=None):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in {"none", "null", ""} and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _parse(text, inner[0], key)
    if origin in (tuple, list, Sequence, typing.Sequence) or kind in (tuple, list):
        # bare `tuple`/`list`: take the item type from the current value, e.g. (0.9, 0.98) -> float
        item = args[0] if args else (type(current[0]) if current else str)
        values = [_parse(part.strip(), item, key) for part in text.split(",") if part.strip()]
        return tuple(values) if origin is tuple or kind is tuple else values
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"--{key} expects true/false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"--{key} expects {kind.__name__}, got {text!r}") from None
    return text


def apply_overrides(config, overrides: Sequence[str]):
    """Return a copy of the dataclass ``config`` with ``--key=value`` overrides applied.

    Parameters
    ----------
    config : dataclass instance
    overrides : sequence of str
        Items like ``"--train.steps=100"`` (the leading dashes are optional).

    Returns
    -------
    The updated copy.
    """
    config = dataclasses.replace(config)
    known = _keys(config)
    for item in overrides:
        body = item[2:] if item.startswith("--") else item
        if "=" not in body:
            raise ConfigError(f"override {item!r} must look like --key=value (known keys: {', '.join(known)})")
        key, text = body.split("=", 1)
        key = key.replace("-", "_")
        if key not in known:
            hint = did_you_mean(key, known, show=lambda close: f"--{close}")
            raise ConfigError(f"unknown config key --{key}.{hint} Known keys: {', '.join(known)}")
        *path, name = key.split(".")
        target = config
        for part in path:  # copy nested sections so the input config is never mutated
            child = dataclasses.replace(getattr(target, part))
            setattr(target, part, child)
            target = child
        setattr(target, name, _parse(text, _fields(type(target))[name], key, getattr(target, name)))
    return config


def config_to_dict(config) -> dict:
    """The config as plain JSON-safe dicts (tuples become lists)."""
    return dataclasses.asdict(config)


def config_keys(config) -> list[str]:
    """Every settable key of ``config`` (``"train.steps"``, ...), in field order."""
    return _keys(config)


# ---------------------------------------------------------------- saved configs (run_config.json)
def _coerce(value, kind, key: str, origin: str):
    """A JSON value as the field type ``kind`` (ints for floats, lists for tuples); else ConfigError."""
    outer, args = typing.get_origin(kind), typing.get_args(kind)
    if outer in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key, origin)
    if outer in (tuple, list, Sequence, typing.Sequence) or kind in (tuple, list):
        if not isinstance(value, list):
            raise ConfigError(f"{origin}: {key} must be a list, got {value!r}; fix the file or set --{key}")
        item = args[0] if args else None  # bare `tuple`: items as saved
        items = [v if item is None else _coerce(v, item, key, origin) for v in value]
        return tuple(items) if outer is tuple or kind is tuple else items
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (kind is float and numeric) or (kind is int and numeric and float(value).is_integer()):
        return kind(value)
    if kind in (bool, str) and isinstance(value, kind):
        return value
    if kind not in (bool, str, int, float):  # a type the CLI does not parse: taken as saved
        return value
    raise ConfigError(f"{origin}: {key} must be {kind.__name__}, got {value!r}; fix the file or set --{key}")


def _flatten(values: Mapping, prefix: str = "") -> dict:
    out = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value
    return out


def apply_mapping(config, values: Mapping, *, origin: str = "config", skip: Sequence[str] = ()):
    """Return a copy of the dataclass ``config`` with the nested ``values`` (a saved config) applied.

    Parameters
    ----------
    config : dataclass instance
    values : mapping
        As :func:`config_to_dict` writes it (sections are nested dicts); keys it lacks keep
        their value in ``config``.
    origin : str
        Names the source in errors, e.g. ``"runs/tok/run_config.json"``.
    skip : sequence of str
        Keys (``"train.resume"``) not taken from ``values``.

    Raises
    ------
    ConfigError
        On a key ``config`` does not have (a config of another command) or a value of the
        wrong type.
    """
    config = dataclasses.replace(config)
    known = _keys(config)
    for key, value in _flatten(values).items():
        if key in skip:
            continue
        if key not in known:
            raise ConfigError(f"{origin} has the key {key!r}, which this command does not take: is it the "
                              "run_config.json of another command (or eegfm version)?")
        *path, name = key.split(".")
        target = config
        for part in path:
            child = dataclasses.replace(getattr(target, part))
            setattr(target, part, child)
            target = child
        setattr(target, name, _coerce(value, _fields(type(target))[name], key, origin))
    return config


# ---------------------------------------------------------------- help texts
#: Help of fields of dataclasses outside ``eegfm.cli`` that carry no comment (``"Class.field"``).
EXTRA_HELP = {
    "TrainConfig.betas": "AdamW's moment decays beta1,beta2",
    "FinetuneConfig.epochs": "passes over the training windows",
    "FinetuneConfig.batch_size": "windows per optimizer step",
    "FinetuneConfig.warmup_epochs": "linear warm-up of the learning rate, in epochs (fractions allowed)",
    "FinetuneConfig.label_smoothing": "cross-entropy label smoothing (0: none)",
    "FinetuneConfig.checkpoint_every_epochs": "write checkpoints/ every N epochs (and at the end)",
}

#: A field of the first class without a help text of its own takes that of the second's
#: field of the same name (``"module:Class"``): fine-tuning shares the training loop's settings.
_SAME_AS = {"FinetuneConfig": "eegfm.training.engine:TrainConfig"}


@functools.cache
def _field_comments(cls) -> dict[str, str]:
    """``{field: comment}`` from the ``# ...`` comments on each field's line(s) in ``cls``'s source."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (e.g. a frozen install): no comments
        return {}
    comments, depth, line = {}, 0, []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type == tokenize.NEWLINE:  # end of a logical line: `name: type = default  # comment`
            code = [t for t in line if t.type != tokenize.COMMENT]
            if depth == 1 and len(code) >= 2 and code[0].type == tokenize.NAME and code[1].string == ":":
                text = " ".join(t.string.lstrip("#").strip() for t in line
                                if t.type == tokenize.COMMENT and t.start[0] >= code[0].start[0])
                comments[code[0].string] = text
            line = []
        elif tok.type == tokenize.NL and all(t.type == tokenize.COMMENT for t in line):
            line = []  # a comment on a line of its own (a section title) belongs to no field
        elif tok.type != tokenize.NL:
            line.append(tok)
    return comments


def _same_as(cls):
    target = _SAME_AS.get(cls.__name__)
    if target is None:
        return None
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def field_help(cls, name: str) -> str:
    """The help text of the field ``name`` of the dataclass ``cls`` ("" when it has none).

    In order: the field's ``metadata["help"]``, the comment beside the field in the source,
    :data:`EXTRA_HELP`, the help of the same field of the class :data:`_SAME_AS` names. A
    comment that only points elsewhere (``# as TrainConfig.amp``) counts as none.
    """
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    text = field.metadata.get("help") or _field_comments(cls).get(name, "")
    if text and not (text.startswith("as ") and "Config." in text):
        return text
    if f"{cls.__name__}.{name}" in EXTRA_HELP:
        return EXTRA_HELP[f"{cls.__name__}.{name}"]
    other = _same_as(cls)
    if other is not None and name in {f.name for f in dataclasses.fields(other)}:
        return field_help(other, name)
    return text


def _show(value) -> str:
    """A default as it is typed on the command line (``true``, ``none``, ``0.9,0.98``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _rows(config, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for name in _fields(type(config)):
        value = getattr(config, name)
        if dataclasses.is_dataclass(value):
            rows += _rows(value, f"{prefix}{name}.")
        else:
            rows.append((f"--{prefix}{name}={_show(value)}", field_help(type(config), name)))
    return rows


def describe(config, prefix: str = "", width: int | None = None) -> str:
    """One ``--key=default  help`` line per field (for ``--help`` texts), help wrapped to ``width``."""
    rows = _rows(config, prefix)
    if not rows:
        return ""
    width = width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    column = min(max(len(flag) for flag, _ in rows) + 4, 38)
    lines = []
    for flag, text in rows:
        flag = f"  {flag}"
        wrapped = textwrap.wrap(text, max(width - column, 30)) or [""]
        if len(flag) + 2 > column:  # a long flag: its help starts on the next line
            lines += [flag] + [" " * column + part for part in wrapped if part]
        else:
            lines += [flag.ljust(column) + wrapped[0]] + [" " * column + part for part in wrapped[1:]]
    return "\n".join(line.rstrip() for line in lines)


def add_config_parser(sub, name: str, help: str, doc: str, config, *, run_options: bool = False):
    """A subcommand whose settings are ``--key=value`` overrides of the dataclass ``config``.

    Its ``--help`` is ``doc`` followed by every key with its default and help text
    (:func:`describe`). ``run_options`` adds ``--config`` and ``--overwrite`` (training runs).
    """
    import argparse

    parser = sub.add_parser(name, help=help, formatter_class=argparse.RawDescriptionHelpFormatter,
                            description=doc.rstrip() + "\n\nsettings (--key=value or --key value; default shown):\n"
                            + describe(config))
    parser.add_argument("overrides", nargs="*", help="--key=value settings (see above)")
    if run_options:
        parser.add_argument("--config", metavar="RUN_CONFIG_JSON", default=None,
                            help="start from the settings of an earlier run (its run_config.json; all but "
                                 "resume); --key=value settings still apply on top")
        parser.add_argument("--overwrite", action="store_true",
                            help="delete the outputs of an earlier run in the run directory first")
    return parser
