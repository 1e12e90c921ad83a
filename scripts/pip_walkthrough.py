#!/usr/bin/env python
"""Walk through README.md as a pip user would: build a wheel, install it outside the repository,
and run what the README tells a user to do, from a folder where ``import eegfm`` cannot come from
the source tree.

    python scripts/pip_walkthrough.py               # quick: this interpreter's dependencies (what the test runs)
    python scripts/pip_walkthrough.py --fresh-venv  # honest: a new venv, torch first, then the wheel

Steps (each prints a line when it starts and a timed line when it ends):

1. copy the working tree (git's tracked and untracked-but-not-ignored files) to a temporary
   folder and build a wheel of it there (the repository itself is not written to);
2. check the wheel holds both packages, the bundled sample EEG (``eegfm/datasets/sample``), the
   recipes and the ``eegfm`` / ``eegfm-video`` commands;
3. install it, non-editable:
   - default: ``pip install --no-deps --target DIR``; commands then run with this interpreter,
     ``PYTHONPATH=DIR`` first and ``PYTHONNOUSERSITE=1``, so the dependencies (torch, mne, ...)
     are the ones already installed here. A ``sitecustomize.py`` written for the walk removes
     the development install's editable finder (setuptools' ``__editable__`` hooks) and the
     repository from ``sys.path``, and makes every process exit with status 97 if it imported
     eegfm from anywhere but DIR;
   - ``--fresh-venv``: ``python -m venv``, ``pip install torch==2.13.0`` (``--torch``), then
     ``pip install WHEEL`` (core dependencies only) for the import, sample, command and demo
     steps, then ``pip install "WHEEL[data]"`` and ``python -m eegfm.fix_torchaudio`` (as the
     README says) for the README's python blocks, which use mne-bids, braindecode and MOABB;
4. from an empty working folder outside the repository: check that ``eegfm.__file__`` is in the
   install, load the bundled sample, run ``eegfm --version``, ``eegfm --help``,
   ``eegfm pretrain --help``, ``eegfm-video --help``, an ``eegfm-video`` command without the
   ``[video]`` extra (default mode hides diffusers, transformers, scikit-image and imageio; it
   must exit 2 naming ``pip install 'eegfm[video]'``), ``eegfm demo`` (shortened unless
   ``--as-written``) and a tiny ``eegfm pretrain --model.target=spectrum`` on the bundled
   sample, which writes the ``runs/pretrain/encoder`` the README's blocks load;
5. every ```python block of README.md, in order, each as a file run with ``python`` in that
   folder, where ``shared/data`` links to the real EEG test data (``--shared-data``, default
   ``EEGFM_SHARED_DATA`` or ``../shared/data``). The README's ``readme-test`` directives apply
   as in ``tests/test_readme.py`` (``run with`` shrinks sizes unless ``--as-written``; a
   ``skip`` block only has its imports run).

It ends with a summary and ``PASS: ...`` (exit 0) or ``FAIL: ...`` (exit 1, the temporary
folder and every step's log are kept). Blocks that need ``shared/data`` fail when it is missing
(``python scripts/fetch_test_data.py`` fetches it), unless ``--skip-data-blocks``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from readme_blocks import Block, readme_blocks  # noqa: E402  (shared with tests/test_readme.py)

README = REPO / "README.md"
#: the extra's import names (eegfm_video/_extras.py VIDEO_MODULES), hidden in the default mode's eegfm-video check
VIDEO_MODULES = ("diffusers", "transformers", "skimage", "imageio", "imageio_ffmpeg")
VIDEO_EXTRA_HINT = "install eegfm[video]: pip install 'eegfm[video]'"
#: the tiny encoder that the README's blocks load from runs/pretrain/encoder (as in tests/test_readme.py)
TINY_PRETRAIN = ["--model.target=spectrum", "--data.sources=sample", "--model.embed_dim=32", "--model.depth=1",
                 "--model.num_heads=2", "--train.steps=2", "--train.run_dir=runs/pretrain",
                 "--data.cache_dir=eegfm-cache"]
SHORT_DEMO = ["--tokenizer_steps=5", "--pretrain_steps=5"]

GUARD = '''\
"""Written by scripts/pip_walkthrough.py: this interpreter imports eegfm only from the pip install.

It removes the development install's editable finder (setuptools' __editable__ hooks) and the
repository from sys.path, hides the modules EEGFM_WALK_HIDE_MODULES names (as if not installed),
and exits with status 97 if eegfm was imported from anywhere but EEGFM_WALK_SITE.
"""
import atexit
import os
import sys

_SITE = os.path.realpath(os.environ["EEGFM_WALK_SITE"])
_REPO = os.path.realpath(os.environ["EEGFM_WALK_REPO"])


def _editable(hook):
    return (getattr(hook, "__module__", None) or "").startswith("__editable__")


def _in_repo(entry):  # the checkout's root (its eegfm/ source), not a .venv inside it
    return os.path.realpath(entry or os.curdir) == _REPO


sys.meta_path[:] = [finder for finder in sys.meta_path if not _editable(finder)]
sys.path_hooks[:] = [hook for hook in sys.path_hooks if not _editable(hook)]
sys.path[:] = [entry for entry in sys.path if not entry.startswith("__editable__") and not _in_repo(entry)]
sys.path_importer_cache.clear()
for _name in filter(None, os.environ.get("EEGFM_WALK_HIDE_MODULES", "").split(",")):
    sys.modules[_name] = None


def _check():
    module = sys.modules.get("eegfm")
    where = os.path.realpath(getattr(module, "__file__", None) or "?") if module is not None else None
    if where is not None and not where.startswith(_SITE + os.sep):
        sys.stderr.write(f"pip walk-through: eegfm was imported from {where}, not from the pip install {_SITE}\\n")
        sys.stderr.flush()
        os._exit(97)


atexit.register(_check)
'''

IMPORT_CHECK = '''\
import importlib.metadata, json, os, sys
import eegfm, eegfm_video, eegfm.data, eegfm.finetune, eegfm.cli.main
sources = tuple(os.path.join(os.path.realpath(sys.argv[1]), pkg) + os.sep for pkg in ("eegfm", "eegfm_video"))
from_repo = sorted(name for name, m in list(sys.modules.items())
                   if os.path.realpath(getattr(m, "__file__", None) or "/").startswith(sources))
print(json.dumps({
    "eegfm": eegfm.__file__, "eegfm_video": eegfm_video.__file__, "version": eegfm.__version__,
    "metadata": str(importlib.metadata.distribution("eegfm").locate_file("eegfm/__init__.py")),
    "editable_finders": [repr(f) for f in sys.meta_path if "__editable__" in (getattr(f, "__module__", "") or "")],
    "modules_from_repo": from_repo,
}))
'''

SAMPLE_CHECK = '''\
import json
from importlib import resources
from eegfm.datasets import list_sample_recordings, load_sample
root = resources.files("eegfm.datasets").joinpath("sample")
names = list_sample_recordings()
raws = load_sample(names, verbose=False)
print(json.dumps({"root": str(root), "npz": sorted(p.name for p in root.iterdir() if p.name.endswith(".npz")),
                  "names": names, "shapes": [list(r.get_data().shape) for r in raws]}))
'''


def _setuptools_here() -> bool:
    """True when this interpreter can build the wheel itself: pyproject.toml's setuptools>=68, and
    bdist_wheel (in setuptools since 70.1, else the ``wheel`` package)."""
    import importlib.metadata as md

    try:
        version = tuple(int(part) for part in md.version("setuptools").split(".")[:2])
    except (md.PackageNotFoundError, ValueError):
        return False
    try:
        has_wheel = bool(md.version("wheel"))
    except md.PackageNotFoundError:
        has_wheel = False
    return version >= (68, 0) and (version >= (70, 1) or has_wheel)


class StepFailed(Exception):
    """A step's check failed; the message says what was expected and what happened."""


class Walk:
    def __init__(self, args):
        self.args = args
        self.fresh = args.fresh_venv
        parent = Path(args.workdir).resolve() if args.workdir else Path(tempfile.gettempdir()).resolve()
        if parent == REPO or REPO in parent.parents:
            raise SystemExit(f"pip_walkthrough: --workdir {parent} is inside the repository {REPO}; "
                             "the walk must run outside it")
        parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="eegfm-pip-walk-", dir=parent))
        self.logs = self.root / "logs"
        self.work = self.root / "work"
        self.logs.mkdir()
        self.work.mkdir()
        self.wheel: Path | None = None
        self.version = ""
        self.site = self.root / ("venv" if self.fresh else "site")  # the install; eegfm must come from here
        self.python = str(self.root / "venv" / "bin" / "python") if self.fresh else sys.executable
        self.bin = self.site / "bin"
        self.shared = Path(args.shared_data or os.environ.get("EEGFM_SHARED_DATA") or REPO.parent / "shared" / "data")
        self.results: list[tuple[str, str, float, str]] = []  # (status, name, seconds, detail)
        self.blocks = readme_blocks(README.read_text(encoding="utf-8"))
        self.blocks_run = 0
        self.eegfm_file = ""

    # ------------------------------------------------------------------ running things
    def env(self, **extra) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")}
        env.update(PYTHONNOUSERSITE="1", HF_HUB_OFFLINE="1", PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}")
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MPLBACKEND", "Agg")
        if not self.fresh:
            env.update(PYTHONPATH=f"{self.root / 'guard'}{os.pathsep}{self.site}",
                       EEGFM_WALK_SITE=str(self.site), EEGFM_WALK_REPO=str(REPO))
        env.update(extra)
        return env

    def run(self, log: str, cmd: list[str], *, expect: int | None = 0, env: dict | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` (output to logs/<log>.log); a return code other than ``expect`` is a StepFailed."""
        path = self.logs / f"{log}.log"
        with open(path, "w", encoding="utf-8") as out:
            out.write(f"$ {' '.join(map(str, cmd))}\n(cwd {cwd or self.work})\n\n")
            out.flush()
            try:
                proc = subprocess.run([str(c) for c in cmd], cwd=cwd or self.work, env=env or self.env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      timeout=self.args.timeout, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as err:
                raise StepFailed(f"timed out after {self.args.timeout} s: {self.shown(cmd)} "
                                 f"(log: {path})") from err
            out.write(proc.stdout)
            out.write(("\n--- stderr ---\n" + proc.stderr) if proc.stderr else "")
            out.write(f"\n--- exit status {proc.returncode}\n")
        if expect is not None and proc.returncode != expect:
            tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-25:])
            raise StepFailed(f"exit status {proc.returncode} (expected {expect}) from {self.shown(cmd)}\n"
                             f"{textwrap.indent(tail, '    | ')}\n    (full log: {path})")
        return proc

    @staticmethod
    def shown(cmd) -> str:
        return " ".join("<code>" if "\n" in str(c) else str(c) for c in cmd)

    def py(self, log: str, code: str, *args, **kw) -> subprocess.CompletedProcess:
        return self.run(log, [self.python, "-c", code, *args], **kw)

    def command(self, name: str) -> str:
        """The installed console script ``name``, as the PATH of the walk finds it (it must be the install's)."""
        found = shutil.which(name, path=self.env()["PATH"])
        if found is None or Path(found).parent != self.bin:
            raise StepFailed(f"`{name}` on the walk's PATH is {found}, not the one pip installed in {self.bin}")
        return found

    # ------------------------------------------------------------------ steps
    def copy_source(self):
        src = self.root / "src"
        try:
            listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                    capture_output=True, check=True).stdout.decode().split("\0")
        except (OSError, subprocess.CalledProcessError):
            listed = None
        if listed is None:  # not a git checkout: everything but what a build or a run leaves behind
            ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__",
                                            "demo_output", ".pytest_cache")
            shutil.copytree(REPO, src, ignore=ignore)
            return "copied the folder (no git)"
        count = 0
        for rel in filter(None, listed):
            if (REPO / rel).is_file():  # a tracked file deleted in the working tree is not copied
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, src / rel)
                count += 1
        return f"{count} files -> {src}"

    def build_wheel(self):
        dist = self.root / "dist"
        # fresh (or no setuptools>=68 here, e.g. a Python 3.12 venv): pip fetches the build backend as a user's would
        isolation = [] if self.fresh or not _setuptools_here() else ["--no-build-isolation"]
        self.run("build-wheel", [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", dist,
                                 self.root / "src"], cwd=self.root)
        wheels = sorted(dist.glob("eegfm-*.whl"))
        if len(wheels) != 1:
            raise StepFailed(f"expected one eegfm wheel in {dist}, found {[w.name for w in wheels]}")
        self.wheel = wheels[0]
        self.version = self.wheel.name.split("-")[1]
        how = "isolated build" if not isolation else "--no-build-isolation"
        return f"{self.wheel.name} ({self.wheel.stat().st_size / 1e6:.1f} MB, {how})"

    def check_wheel(self):
        with zipfile.ZipFile(self.wheel) as z:
            names = z.namelist()
            entry_points = next((z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
        sample_src = REPO / "eegfm" / "datasets" / "sample"
        wanted = ["eegfm/__init__.py", "eegfm_video/__init__.py", "eegfm/datasets/sample/manifest.json",
                  *(f"eegfm/datasets/sample/{p.name}" for p in sorted(sample_src.glob("*.npz"))),
                  *(f"eegfm/recipes/{p.name}" for p in sorted((REPO / "eegfm" / "recipes").glob("*.json")))]
        missing = [n for n in wanted if n not in names]
        npz = [n for n in names if n.startswith("eegfm/datasets/sample/") and n.endswith(".npz")]
        if missing or not npz:
            raise StepFailed(f"the wheel lacks {missing or 'any sample .npz'} (pyproject.toml package-data?)")
        commands = [c for c in ("eegfm", "eegfm-video") if not re.search(rf"^{c}\s*=", entry_points, re.M)]
        if commands:
            raise StepFailed(f"the wheel's entry_points.txt has no console script {commands}:\n{entry_points}")
        tops = sorted({n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")})
        if tops != ["eegfm", "eegfm_video"]:
            raise StepFailed(f"the wheel's top-level entries are {tops}, expected only eegfm and eegfm_video")
        return f"{len(names)} files, {len(npz)} sample recordings, commands eegfm and eegfm-video"

    def install_target(self):
        self.run("install", [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", self.site,
                             self.wheel], cwd=self.root)
        guard = self.root / "guard"
        guard.mkdir()
        (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
        return f"{self.site} (dependencies: {sys.prefix})"

    def create_venv(self):
        self.run("venv", [sys.executable, "-m", "venv", self.site], cwd=self.root)
        return str(self.site)

    def pip(self, log: str, *requirements) -> None:
        self.run(log, [self.python, "-m", "pip", "install", "--no-input", "--progress-bar", "off", *requirements],
                 cwd=self.root)

    def install_torch(self):
        self.pip("install-torch", f"torch=={self.args.torch}")
        return f"torch=={self.args.torch}"

    def install_core(self):
        self.pip("install-eegfm", self.wheel)
        return f"pip install {self.wheel.name}"

    def install_data_extra(self):
        self.pip("install-eegfm-data", f"{self.wheel}[data]")
        return f'pip install "{self.wheel.name}[data]"'

    def fix_torchaudio(self):
        proc = self.run("fix-torchaudio", [self.python, "-m", "eegfm.fix_torchaudio"])
        return (proc.stdout.strip().splitlines() or ["done"])[-1]

    def check_import(self):
        proc = self.py("import-eegfm", IMPORT_CHECK, REPO)
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        site = os.path.realpath(self.site) + os.sep
        bad = {k: info[k] for k in ("eegfm", "eegfm_video", "metadata")
               if not os.path.realpath(info[k]).startswith(site)}
        if bad or info["editable_finders"] or info["modules_from_repo"]:
            raise StepFailed(f"not the pip install: {bad or ''} editable finders {info['editable_finders']}, "
                             f"modules from the source tree {REPO}: {info['modules_from_repo']} (expected everything under {site})")
        if info["version"] != self.version:
            raise StepFailed(f"eegfm.__version__ is {info['version']!r}, the wheel is {self.version!r}")
        self.eegfm_file = info["eegfm"]
        print(f"[walk] eegfm imported from: {info['eegfm']}", flush=True)
        return info["eegfm"]

    def check_sample(self):
        info = json.loads(self.py("sample", SAMPLE_CHECK).stdout.strip().splitlines()[-1])
        root = os.path.realpath(info["root"])
        if not root.startswith(os.path.realpath(self.site) + os.sep):
            raise StepFailed(f"the bundled sample was read from {root}, not from the install {self.site}")
        if len(info["npz"]) != len(info["names"]) or not info["names"]:
            raise StepFailed(f"sample folder {root} has {info['npz']}, the manifest lists {info['names']}")
        shapes = ", ".join(f"{n} {tuple(s)}" for n, s in zip(info["names"], info["shapes"]))
        return f"{root}: {shapes}"

    def cli_version(self):
        out = self.run("eegfm-version", [self.command("eegfm"), "--version"]).stdout.strip()
        if not out.startswith(f"eegfm {self.version} (torch "):
            raise StepFailed(f"`eegfm --version` printed {out!r}, expected 'eegfm {self.version} (torch ...'")
        return out

    def cli_help(self):
        out = self.run("eegfm-help", [self.command("eegfm"), "--help"]).stdout
        missing = [c for c in ("demo", "tokenizer", "pretrain", "finetune") if c not in out]
        if missing:
            raise StepFailed(f"`eegfm --help` does not list {missing}:\n{out}")
        return "lists demo, tokenizer, pretrain, finetune"

    def cli_pretrain_help(self):
        out = self.run("eegfm-pretrain-help", [self.command("eegfm"), "pretrain", "--help"]).stdout
        for key in ("--train.steps=", "--data.sources=", "--model.target="):
            if key not in out:
                raise StepFailed(f"`eegfm pretrain --help` does not show {key}")
        return f"{len(out.splitlines())} lines"

    def video_help(self):
        hide = {} if self.fresh else {"EEGFM_WALK_HIDE_MODULES": ",".join(VIDEO_MODULES)}
        out = self.run("eegfm-video-help", [self.command("eegfm-video"), "--help"], env=self.env(**hide)).stdout
        if "usage: eegfm-video" not in out:
            raise StepFailed(f"`eegfm-video --help` printed no usage:\n{out}")
        return "works" + ("" if self.fresh else " with the [video] extra hidden")

    def video_without_extra(self):
        if self.fresh:
            present = self.py("video-extra-present", "import importlib.util as u, sys; "
                              f"print([m for m in {VIDEO_MODULES!r} if u.find_spec(m)])").stdout.strip()
            if present != "[]":
                raise StepFailed(f"the fresh venv has [video] packages {present}; expected none")
            hide = {}
        else:
            hide = {"EEGFM_WALK_HIDE_MODULES": ",".join(VIDEO_MODULES)}
        proc = self.run("eegfm-video-train-no-extra", [self.command("eegfm-video"), "train", "--data=x"],
                        expect=2, env=self.env(**hide))
        if VIDEO_EXTRA_HINT not in proc.stderr or len(proc.stderr.strip().splitlines()) != 1:
            raise StepFailed(f"expected one line naming `{VIDEO_EXTRA_HINT}`, got:\n{proc.stderr}")
        return proc.stderr.strip()

    def demo(self):
        args = [] if self.args.as_written else SHORT_DEMO
        out = self.run("eegfm-demo", [self.command("eegfm"), "demo", *args]).stdout
        timing = re.search(r"^demo: .*$", out, re.M)
        if "reloaded outputs identical: True" not in out or timing is None:
            raise StepFailed("`eegfm demo` did not end with 'reloaded outputs identical: True' and its "
                             f"'demo: N s wall' line:\n{out[-2000:]}")
        return f"eegfm demo {' '.join(args)}".strip() + f" ({timing.group(0)})"

    def pretrain(self):
        self.run("eegfm-pretrain", [self.command("eegfm"), "pretrain", *TINY_PRETRAIN])
        encoder = self.work / "runs" / "pretrain" / "encoder"
        missing = [f for f in ("config.json", "model.safetensors") if not (encoder / f).is_file()]
        if missing:
            raise StepFailed(f"`eegfm pretrain` wrote no {missing} in {encoder}")
        return "eegfm pretrain " + " ".join(TINY_PRETRAIN) + " -> runs/pretrain/encoder"

    def link_shared_data(self):
        if not self.shared.is_dir():
            return f"no test data at {self.shared} (README blocks that read shared/data cannot run)"
        (self.work / "shared").mkdir(exist_ok=True)
        (self.work / "shared" / "data").symlink_to(self.shared.resolve(), target_is_directory=True)
        return f"shared/data -> {self.shared.resolve()}"

    def readme_block(self, block: Block):
        path = self.work / f"readme_line_{block.line:03d}.py"
        log = f"readme-line-{block.line:03d}"
        if block.skip is not None:  # as tests/test_readme.py: its imports must still work
            tree = ast.parse(block.code, f"README.md:{block.line}")
            imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
            path.write_text(ast.unparse(ast.Module(imports, [])) + "\n", encoding="utf-8")
            self.run(log, [self.python, path.name])
            return "SKIP", f"skipped by the README ({block.skip}); its imports work"
        if "shared/data" in block.code and not (self.work / "shared" / "data").is_dir():
            message = (f"needs shared/data, but there is no test data at {self.shared}: "
                       "`python scripts/fetch_test_data.py` fetches it (or pass --shared-data)")
            if self.args.skip_data_blocks:
                return "SKIP", message + " [--skip-data-blocks]"
            raise StepFailed(message)
        code = block.code if self.args.as_written else block.runnable()
        path.write_text(code, encoding="utf-8")
        proc = self.run(log, [self.python, path.name])
        self.blocks_run += 1
        warnings = [line for line in proc.stderr.splitlines() if re.search(r"\w+Warning\b", line)]
        sized = "" if self.args.as_written or not block.replace else \
            " with " + ", ".join(f"{new}" for _, new in block.replace)
        note = f"; {len(warnings)} warning line(s), e.g. {warnings[0].strip()[:160]}" if warnings else ""
        return "ok", f"python {path.name}{sized}{note}"

    def steps(self):
        steps = [("copy the working tree", self.copy_source, True),
                 ("build the wheel", self.build_wheel, True),
                 ("check the wheel's contents", self.check_wheel, True)]
        if self.fresh:
            steps += [("create a fresh venv", self.create_venv, True),
                      ("pip install torch first", self.install_torch, True),
                      ("pip install the wheel (core dependencies)", self.install_core, True)]
        else:
            steps += [("pip install --no-deps --target", self.install_target, True)]
        steps += [("import eegfm from the install", self.check_import, True),
                  ("load the bundled sample EEG", self.check_sample, False),
                  ("eegfm --version", self.cli_version, False),
                  ("eegfm --help", self.cli_help, False),
                  ("eegfm pretrain --help", self.cli_pretrain_help, False),
                  ("eegfm-video --help", self.video_help, False),
                  ("eegfm-video train without the [video] extra", self.video_without_extra, False),
                  ("eegfm demo", self.demo, False),
                  ("eegfm pretrain -> runs/pretrain/encoder", self.pretrain, True)]
        if self.fresh:
            steps += [('pip install "WHEEL[data]"', self.install_data_extra, True),
                      ("python -m eegfm.fix_torchaudio", self.fix_torchaudio, True)]
        steps += [("link the test data", self.link_shared_data, False)]
        steps += [(f"README.md:{b.line} python block", lambda b=b: self.readme_block(b), False) for b in self.blocks]
        return steps

    # ------------------------------------------------------------------ the walk
    def walk(self) -> int:
        mode = (f"fresh venv, torch=={self.args.torch}" if self.fresh
                else f"pip install --no-deps --target, dependencies of {sys.prefix}")
        print(f"[walk] README walk-through of a pip-installed eegfm ({mode}); working folder {self.work}", flush=True)
        steps = self.steps()
        t0 = time.perf_counter()
        for i, (name, step, critical) in enumerate(steps, 1):
            print(f"[walk] {i}/{len(steps)} {name} ...", flush=True)
            t = time.perf_counter()
            try:
                result = step()
                status, detail = result if isinstance(result, tuple) else ("ok", result or "")
            except StepFailed as err:
                status, detail = "FAIL", str(err)
            seconds = time.perf_counter() - t
            self.results.append((status, name, seconds, detail))
            print(f"[walk] {i}/{len(steps)} {status:4s} {seconds:6.1f} s  {name}: {detail}", flush=True)
            if status == "FAIL" and critical:
                print("[walk] stopping: the later steps need this one", flush=True)
                break
        total = time.perf_counter() - t0
        failed = [name for status, name, _, _ in self.results if status == "FAIL"]
        done = len(self.results) == len(steps)
        print(f"\n[walk] summary ({mode}):")
        for status, name, seconds, _ in self.results:
            print(f"  {status:4s} {seconds:6.1f} s  {name}")
        readme = [b for b in self.blocks if b.skip is None]
        skipped = [r for r in self.results if r[0] == "SKIP"]
        if failed or not done:
            print(f"FAIL: {len(failed)} of {len(steps)} steps failed ({', '.join(failed)}) in {total:.1f} s; "
                  f"logs and files kept in {self.root}", flush=True)
            return 1
        print(f"PASS: {len(steps)} steps in {total:.1f} s; {self.blocks_run} of {len(readme)} README python blocks "
              f"run, {len(skipped)} skipped; eegfm imported from {self.eegfm_file}", flush=True)
        if self.args.keep:
            print(f"[walk] files kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--fresh-venv", action="store_true",
                        help="install into a new venv (torch first, then the wheel) instead of --target with this "
                             "interpreter's dependencies; for a person to run by hand")
    parser.add_argument("--torch", default=os.environ.get("TORCH_VERSION", "2.13.0"),
                        help="torch version --fresh-venv installs first (default: TORCH_VERSION or 2.13.0)")
    parser.add_argument("--shared-data", help="the real EEG test data that shared/data links to "
                                              "(default: EEGFM_SHARED_DATA or ../shared/data beside the repository)")
    parser.add_argument("--skip-data-blocks", action="store_true",
                        help="without the test data, skip the README blocks that read shared/data instead of failing")
    parser.add_argument("--as-written", action="store_true",
                        help="run the README's blocks and `eegfm demo` at the sizes written (no readme-test "
                             "`run with` replacements, the demo's default steps): slower")
    parser.add_argument("--workdir", help="where the temporary folder goes (default: the system's temp folder; "
                                          "never inside the repository)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder after a PASS (always kept after a FAIL)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one command may take (default 1800)")
    args = parser.parse_args(argv)
    return Walk(args).walk()


if __name__ == "__main__":
    sys.exit(main())
