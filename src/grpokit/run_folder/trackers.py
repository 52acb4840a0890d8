"""The trackers users already have: TensorBoard, Weights & Biases, MLflow and Trackio.

``--report-to tensorboard,wandb`` sends every record the run writes to ``metrics.jsonl`` (and each
``eval.jsonl`` record, as ``eval/<key>``) to those trackers as well, with the same step. The run
folder stays the source of truth: trackers only receive copies, from one call site
(:class:`grpokit.run_folder.RunWriter`), and a tracker that fails is switched off with a
warning and a ``tracker_error`` event; it never stops the run.

Each writes locally unless told otherwise, so nothing leaves the machine by surprise:

============  ===========================================  ==================================
name          where it writes                              to go online
============  ===========================================  ==================================
tensorboard   ``RUN/tensorboard/`` event files             ``tensorboard --logdir RUN``
wandb         ``RUN/wandb/`` in offline mode               ``WANDB_MODE=online`` (or ``wandb sync``)
mlflow        a file store in ``RUN/mlruns``               ``MLFLOW_TRACKING_URI=...``
trackio       trackio's local store (``TRACKIO_DIR``)      ``trackio show``
============  ===========================================  ==================================

Project / experiment name: ``WANDB_PROJECT``, ``MLFLOW_EXPERIMENT_NAME``, else ``grpokit``; the run
is named after its folder. A resumed run continues the same wandb and MLflow run (their ids are kept
in ``RUN/trackers.json``). Install them with ``pip install 'grpokit[trackers]'`` (or just the one
you use: ``tensorboardX`` or ``tensorboard``, ``wandb``, ``mlflow-skinny`` or ``mlflow``, ``trackio``).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Protocol

from grpokit.run_folder.config_keys import flatten

NAMES = ("tensorboard", "wandb", "mlflow", "trackio")
_IDS_FILE = "trackers.json"


class Tracker(Protocol):
    name: str

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


def parse_report_to(spec: str | list | tuple | None) -> list[str]:
    """``"tensorboard,wandb"`` (or a list) -> names; ``""``/``"none"`` -> ``[]``; unknown names are a ValueError."""
    items = spec if isinstance(spec, (list, tuple)) else str(spec or "").split(",")
    names = [str(n).strip().lower() for n in items if str(n).strip()]
    if names in ([], ["none"]):
        return []
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"report_to: unknown tracker(s) {unknown}; use a comma-separated list of {list(NAMES)}, or none")
    return list(dict.fromkeys(names))


def numeric(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a record (what a tracker can plot); ``step`` itself is not a metric."""
    return {k: float(v) for k, v in record.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _ids(run_dir: Path) -> dict[str, str]:
    try:
        return json.loads((run_dir / _IDS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _save_id(run_dir: Path, key: str, value: str) -> None:
    ids = {**_ids(run_dir), key: value}
    tmp = run_dir / (_IDS_FILE + ".tmp")
    tmp.write_text(json.dumps(ids), encoding="utf-8")
    tmp.replace(run_dir / _IDS_FILE)


class TrackerNotInstalled(ImportError, ValueError):
    """``--report-to`` names a tracker whose package is missing (a ValueError too: the CLI prints it as a usage error)."""


def _missing(package: str, name: str) -> ImportError:
    return TrackerNotInstalled(f"--report-to {name} needs the {package} package: pip install {package} "
                       "(or pip install 'grpokit[trackers]' for all of them)")


class TensorBoard:
    """Event files under ``RUN/tensorboard``; torch's writer if ``tensorboard`` is installed, else tensorboardX."""

    name = "tensorboard"

    def __init__(self, run_dir: Path, config: dict, backend: str | None = None):
        if backend in (None, "torch"):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                if backend == "torch":
                    raise _missing("tensorboard", self.name) from None
                backend = "tensorboardX"
        if backend == "tensorboardX":
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise _missing("tensorboardX", self.name) from None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    @staticmethod
    def key(k: str) -> str:
        r"""The tag: TensorBoard tags allow ``[-/\w.]``; tensorboardX replaces anything else by ``_``
        on its own (``eval/pass@1`` -> ``eval/pass_1``), so both writers get the same tag from here."""
        return _TB_BAD.sub("_", k)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(self.key(k), v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    """A wandb run in ``RUN/wandb``, offline unless ``WANDB_MODE`` says otherwise."""

    name = "wandb"

    def __init__(self, run_dir: Path, config: dict):
        try:
            import wandb
        except ImportError:
            raise _missing("wandb", self.name) from None
        run_id = _ids(run_dir).get("wandb") or uuid.uuid4().hex[:12]
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "grpokit"), name=run_dir.name, id=run_id,
                              resume="allow", dir=str(run_dir), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"))
        _save_id(run_dir, "wandb", run_id)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


_TB_BAD = re.compile(r"[^-/\w.]")
_MLFLOW_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")


class MLflow:
    """An MLflow run in a file store at ``RUN/mlruns`` unless ``MLFLOW_TRACKING_URI`` is set.

    MLflow 3 keeps the file store in maintenance mode behind ``MLFLOW_ALLOW_FILE_STORE=true``, which
    is set (if unset) only when this default is used: it is the local store mlflow-skinny can write
    without a database driver. ``MLFLOW_TRACKING_URI=sqlite:///RUN/mlflow.db`` picks the database
    backend (full ``mlflow``). MLflow keys allow letters, digits and ``_-. /``: others become ``_``
    (``pass@1`` -> ``pass_1``).
    """

    name = "mlflow"

    def __init__(self, run_dir: Path, config: dict):
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow-skinny", self.name) from None
        self._Metric = Metric
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (run_dir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        run_id = _ids(run_dir).get("mlflow")
        if run_id is None:
            exp_name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "grpokit")
            exp = self.client.get_experiment_by_name(exp_name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(exp_name)
            run_id = self.client.create_run(exp_id, run_name=run_dir.name).info.run_id
            params = [Param(self.key(k), str(v)[:6000]) for k, v in flatten(config).items()]
            for i in range(0, len(params), 100):  # log_batch takes at most 100 params a call
                self.client.log_batch(run_id, params=params[i:i + 100])
            _save_id(run_dir, "mlflow", run_id)
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    @staticmethod
    def key(k: str) -> str:
        return _MLFLOW_BAD.sub("_", k)

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._Metric(self.key(k), v, now, step) for k, v in metrics.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Trackio:
    """A trackio run in trackio's local store (``TRACKIO_DIR``; see ``trackio show``)."""

    name = "trackio"

    def __init__(self, run_dir: Path, config: dict):
        try:
            import trackio
        except ImportError:
            raise _missing("trackio", self.name) from None
        self.trackio = trackio
        self.run = trackio.init(project=os.environ.get("TRACKIO_PROJECT", "grpokit"), name=run_dir.name,
                                config=config, resume="allow")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


_CLASSES = {"tensorboard": TensorBoard, "wandb": WandB, "mlflow": MLflow, "trackio": Trackio}


def check_installed(spec: str | list | None) -> list[str]:
    """Validate ``report_to`` and that each tracker's package imports, before anything heavy loads."""
    import importlib.util

    names = parse_report_to(spec)
    need = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",),
            "mlflow": ("mlflow",), "trackio": ("trackio",)}
    for n in names:
        if not any(importlib.util.find_spec(m) is not None for m in need[n]):
            raise _missing({"tensorboard": "tensorboardX", "mlflow": "mlflow-skinny"}.get(n, n), n)
    return names


def open_trackers(spec: str | list | None, run_dir: str | os.PathLike, config: dict | None = None) -> list[Tracker]:
    """The trackers ``spec`` names (``"tensorboard,wandb"``, ``""`` = none), each opened on ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    opened: list[Tracker] = []
    try:
        for name in check_installed(spec):
            opened.append(_CLASSES[name](run_dir, dict(config or {})))
    except BaseException:
        for t in opened:
            t.close()
        raise
    return opened


class TrackerSet:
    """The open trackers of a run: each record goes to each; one that fails is switched off, never the run."""

    def __init__(self, trackers: list[Tracker], on_error=None):
        self.trackers, self.on_error = list(trackers), on_error

    def _each(self, what: str, call) -> None:
        for t in list(self.trackers):
            try:
                call(t)
            except Exception as e:  # noqa: BLE001 - metrics.jsonl has the record; a tracker is a copy
                self.trackers.remove(t)
                msg = f"{t.name} failed to {what} ({type(e).__name__}: {e}); it is switched off for this run"
                warnings.warn(msg, stacklevel=3)
                if self.on_error is not None:
                    self.on_error(tracker=t.name, error=msg)

    def log(self, step: int, record: dict[str, Any]) -> None:
        metrics = numeric(record)
        if metrics:
            self._each("log", lambda t: t.log(metrics, step))

    def close(self) -> None:
        self._each("close", lambda t: t.close())
        self.trackers = []
