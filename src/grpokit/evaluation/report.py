"""``grpokit report RUN_DIR [RUN_DIR ...] [--out DIR]``: plots and a Markdown summary of training runs.

Reads each run folder with :class:`grpokit.run_folder.RunReader` (layout in docs/run-format.md) and
writes into ``--out`` (default ``RUN_DIR/report`` for one run, ``./report`` for several):

- one PNG per :data:`PLOTS` entry (reward, held-out accuracy, length, reflection rate, entropy, KL,
  clip fraction, per-phase time, ...), every run on the same axes (colour = run, line style =
  series). Noisy training curves are drawn raw (faint) with a centred moving average on top;
  held-out points carry their 95% interval when ``eval.jsonl`` has ``<name>_ci_low/_ci_high``.
  A plot is drawn only when some run has one of its series.
- ``report.md``: runs and their state, final training numbers (last value and mean of the last
  ``--last`` steps), held-out numbers before -> after training with SE, time per phase, the
  config keys that differ between runs, and the plots.

Matplotlib is used through ``Figure`` + the Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpokit.run_folder import RunReader

_EVAL_ACC = r"^(pass@\d+|cons@\d+|maj@\d+|greedy_acc|sampled_acc|accuracy|acc)$"


@dataclass(frozen=True)
class Series:
    """One line per run: the first of ``keys`` the run has (fallbacks), or every key matching
    ``pattern``; read from ``metrics.jsonl`` or ``eval.jsonl`` (``source``)."""

    keys: tuple[str, ...] = ()
    label: str = ""
    source: str = "metrics"
    pattern: str | None = None


@dataclass(frozen=True)
class Plot:
    """A PNG: file stem, title, y-axis label, its series, whether to overlay a smoothed curve, and whether each
    series gets its own panel (``panels``; ``sharey`` puts them on one y scale); ``ylim`` fixes axis ends
    (``None`` = automatic), e.g. seconds from 0 so that the noise of a phase does not look like a trend."""

    name: str
    title: str
    ylabel: str
    series: tuple[Series, ...]
    smooth: bool = True
    panels: bool = False
    sharey: bool = False
    ylim: tuple[float | None, float | None] = (None, None)


PLOTS: tuple[Plot, ...] = (
    Plot("reward", "Mean reward of the step's completions", "reward",
         (Series(("reward/mean",), "reward"),)),
    Plot("reward_fns", "Mean reward per reward function", "reward",
         (Series(pattern=r"^reward/([^/]+)/mean$"),)),
    Plot("heldout", "Held-out evaluation (95% intervals)", "accuracy",
         (Series(source="eval", pattern=_EVAL_ACC),), smooth=False, panels=True, sharey=True,
         ylim=(-0.02, 1.02)),
    Plot("length", "Completion length", "tokens",
         (Series(("completions/mean_length", "behaviour/length_mean"), "mean"),
          Series(("behaviour/length_correct_mean",), "correct"),
          Series(("behaviour/length_wrong_mean",), "wrong"))),
    Plot("reflection", "Reflective words (wait, verify, mistake, ...)", "per 1,000 tokens",
         (Series(("behaviour/reflection_per_1k",), "reflection"),)),
    Plot("entropy", "Policy entropy", "nats per token",
         (Series(("policy/entropy", "behaviour/entropy"), "entropy"),)),
    Plot("kl", "KL to the reference policy (k3)", "KL",
         (Series(("loss/kl",), "KL"),)),
    Plot("mismatch", "Sampler vs learner (vLLM): KL(sampler || learner), k3", "KL",
         (Series(("mismatch/kl",), "KL"),)),
    Plot("clip", "Share of tokens where the PPO clip binds", "token share",
         (Series(("loss/clip_low_frac",), "low clip"), Series(("loss/clip_high_frac",), "high clip"))),
    Plot("format", "Format compliance and truncation", "share of completions",
         (Series(("behaviour/format_rate",), "format ok"), Series(("completions/truncated_frac",), "truncated")),
         ylim=(-0.02, 1.02)),
    Plot("episodes", "Multi-turn episodes: tool use", "share of episodes / calls",
         (Series(("episodes/tool_call_rate",), "tool-call rate"), Series(("episodes/tool_error_rate",), "tool-error rate")),
         ylim=(-0.02, 1.02)),
    Plot("turns", "Turns per episode", "turns", (Series(("episodes/turns_mean",), "turns"),)),
    Plot("reward_turns", "Mean reward of episodes by their number of turns", "reward",
         (Series(pattern=r"^episodes/reward_at_turns/(\d+)$"),)),
    Plot("time", "Time per step by phase", "seconds",
         (Series(("time/generate",), "generate"), Series(("time/reward",), "reward"),
          Series(("time/update",), "update"), Series(("time/weight_sync",), "weight sync"),
          Series(("time/eval",), "eval")), panels=True, ylim=(0, None)),
)

FINAL_KEYS = ("reward/mean", "completions/mean_length", "behaviour/length_correct_mean", "behaviour/length_wrong_mean",
              "behaviour/reflection_per_1k", "behaviour/format_rate", "behaviour/cjk_frac", "behaviour/repetition",
              "policy/entropy", "loss/kl", "loss/clip_low_frac", "loss/clip_high_frac", "completions/truncated_frac",
              "groups/zero_std_frac", "throughput/tokens_per_s", "mismatch/kl", "mismatch/ratio_max",
              "episodes/tool_call_rate", "episodes/tool_error_rate", "episodes/turns_mean")
PHASES = ("time/generate", "time/reward", "time/update", "time/weight_sync", "time/eval")
_STYLES = ("-", "--", ":", "-.")


@dataclass
class Run:
    name: str
    path: Path
    config: dict
    status: dict
    metrics: list[dict]
    evals: list[dict]

    def records(self, source: str) -> list[dict]:
        return self.metrics if source == "metrics" else self.evals

    def curve(self, source: str, key: str) -> tuple[list[float], list[float]]:
        pts = [(r["step"], r[key]) for r in self.records(source) if _num(r.get(key)) and _num(r.get("step"))]
        return [p[0] for p in pts], [float(p[1]) for p in pts]

    def keys(self, source: str) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records(source):
            seen.update((k, None) for k, v in r.items() if _num(v))
        return list(seen)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def load_runs(paths: list[str]) -> list[Run]:
    """Read each folder; names come from the config's ``name`` or the folder, made unique."""
    runs = []
    for p in paths:
        r = RunReader(p)
        cfg = r.config() or {}
        name = str(cfg.get("name") or Path(p).resolve().name)
        runs.append(Run(name, Path(p), cfg, r.status(), r.metrics(), r.evals()))
    names = [r.name for r in runs]
    for i, r in enumerate(runs):
        if names.count(r.name) > 1:
            r.name = f"{r.name} [{i + 1}]"
    return runs


# ------------------------------------------------------------------------------------- plots


def smooth_centered(ys: list[float], frac: float) -> list[float]:
    """Centred moving average over a window of ``max(3, frac * len(ys))`` points (made odd).

    Centred, unlike TensorBoard's EMA, so a trend is not shifted right: the report is drawn after
    the fact and may look ahead. Near the ends the window shrinks symmetrically (the end points are raw).
    """
    n = len(ys)
    half = max(3, int(frac * n)) // 2
    csum = [0.0]
    for y in ys:
        csum.append(csum[-1] + y)
    out = []
    for i in range(n):
        h = min(half, i, n - 1 - i)
        out.append((csum[i + h + 1] - csum[i - h]) / (2 * h + 1))
    return out


def _lines(plot: Plot, run: Run) -> list[tuple[str, str, str, int]]:
    """``(source, key, label, style index)`` of each line this run contributes to ``plot``."""
    out = []
    for si, s in enumerate(plot.series):
        have = run.keys(s.source)
        if s.pattern:
            matched = sorted((m for m in map(re.compile(s.pattern).match, have) if m), key=lambda m: _order(m.string))
            out += [(s.source, m.string, m.group(1) if m.groups() else m.string, si + j) for j, m in enumerate(matched)]
        else:
            key = next((k for k in s.keys if k in have), None)
            if key:
                out.append((s.source, key, s.label, si))
    return out


def _order(key: str) -> tuple:
    """pass@k, then cons@k / maj@k, then the rest; numbers in names compared as numbers."""
    rank = next((i for i, p in enumerate(("pass@", "cons@", "maj@", "greedy", "sampled")) if key.startswith(p)), 9)
    return (rank,) + tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", key) if t)


def _draw_line(ax, run: Run, source: str, key: str, style: str, colour: str, name: str, smooth: float) -> bool:
    """One curve; held-out points get their interval band. True when a smoothed curve was overlaid."""
    xs, ys = run.curve(source, key)
    if source == "eval":
        ax.plot(xs, ys, style, color=colour, marker="o", ms=5, lw=1.8, label=name)
        lo, hi = run.curve("eval", f"{key}_ci_low"), run.curve("eval", f"{key}_ci_high")
        if lo[0] == xs and hi[0] == xs:
            ax.fill_between(xs, lo[1], hi[1], color=colour, alpha=0.15, lw=0)
        return False
    if smooth > 0 and len(xs) >= 10:
        ax.plot(xs, ys, style, color=colour, lw=0.8, alpha=0.25)
        ax.plot(xs, smooth_centered(ys, smooth), style, color=colour, lw=2, label=name)
        return True
    ax.plot(xs, ys, style, color=colour, lw=1.8, marker="o" if len(xs) < 10 else None, ms=4, label=name)
    return False


def draw(plot: Plot, runs: list[Run], path: Path, smooth: float) -> bool:
    """Draw ``plot`` for ``runs`` into ``path``; False (nothing written) when no run has its data.

    Colour = run. On a single axes the line style tells the series apart; with ``plot.panels``
    each series gets its own panel (for series on different scales, or with overlapping bands).
    """
    per_run = [(run, _lines(plot, run)) for run in runs]
    labels = list(dict.fromkeys(line[2] for _, lines in per_run for line in lines))
    if not labels:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    smooth = smooth if plot.smooth else 0.0
    panels = labels if plot.panels else [None]
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(8, 4.6) if cols == 1 else (4.4 * cols, 3.9 * rows), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharey=plot.sharey, squeeze=False).ravel()
    smoothed = False
    for ax, panel in zip(axes, panels):
        for r, (run, lines) in enumerate(per_run):
            for source, key, label, si in lines:
                if panel is not None and label != panel:
                    continue
                if panel is not None or (len(labels) == 1 and len(plot.series) == 1 and not plot.series[0].pattern):
                    name, style = run.name, "-"
                else:
                    name, style = (f"{run.name} · {label}" if len(runs) > 1 else label), _STYLES[si % len(_STYLES)]
                smoothed |= _draw_line(ax, run, source, key, style, f"C{r % 10}", name, smooth)
        if panel is not None:
            ax.set_title(panel, fontsize=11)
        ax.set_xlabel("optimizer step", fontsize=10)
        ax.set_ylabel(plot.ylabel, fontsize=10)
        ax.grid(alpha=0.3)
        ax.set_ylim(*plot.ylim)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    title = plot.title + (f" — {runs[0].name}" if len(runs) == 1 else "")
    title += "  (bold: smoothed, faint: raw)" if smoothed else ""
    if plot.panels:
        fig.suptitle(title, fontsize=12)
        if len(runs) > 1:  # colour = run in every panel: one legend says which
            axes[0].legend(fontsize=9, loc="best", framealpha=0.85)
    else:
        axes[0].set_title(title, fontsize=12)
        if len(axes[0].get_legend_handles_labels()[1]) > 1:  # one line: the title already names it
            axes[0].legend(fontsize=9, loc="best", framealpha=0.85)
    fig.savefig(path)
    return True


# ---------------------------------------------------------------------------------- markdown


def fmt(v: Any) -> str:
    """Numbers for the report: ints as is, |x| >= 1000 with thousands separators, else 4 significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config to dotted keys; lists become JSON text so they compare as values."""
    if not isinstance(d, dict):
        return {prefix: json.dumps(d) if isinstance(d, (list, tuple)) else d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def config_diff(runs: list[Run]) -> list[tuple[str, list[Any]]]:
    """``(key, value per run)`` for every dotted config key whose value is not the same in all runs."""
    flats = [flatten(r.config) for r in runs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    missing = object()
    rows = []
    for k in keys:
        vals = [f.get(k, missing) for f in flats]
        if any(v is missing for v in vals) or len({json.dumps(v, sort_keys=True, default=str) for v in vals}) > 1:
            rows.append((k, [None if v is missing else v for v in vals]))
    return rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = [[str(c).replace("|", "\\|") for c in row] for row in [header] + rows]
    lines = ["| " + " | ".join(r) + " |" for r in esc]
    return [lines[0], "|" + "---|" * len(header)] + lines[1:]


def _final_rows(runs: list[Run], last: int) -> list[list[str]]:
    rows = []
    per_fn = sorted({k for r in runs for k in r.keys("metrics") if re.match(r"^reward/[^/]+/mean$", k)})
    for key in FINAL_KEYS + tuple(per_fn):
        cells, any_data = [], False
        for r in runs:
            _, ys = r.curve("metrics", key)
            if ys:
                any_data = True
                tail = ys[-last:]
                cells.append(f"{fmt(ys[-1])} ({fmt(sum(tail) / len(tail))})")
            else:
                cells.append("—")
        if any_data:
            rows.append([f"`{key}`"] + cells)
    aha = [sum(r.curve("metrics", "behaviour/aha_count")[1]) for r in runs]
    if any(aha):
        rows.append(["`behaviour/aha_count` (total)"] + [fmt(int(a)) for a in aha])
    return rows


def _eval_rows(runs: list[Run]) -> list[list[str]]:
    keys = sorted({k for r in runs for k in r.keys("eval") if re.match(_EVAL_ACC, k)}, key=_order)
    rows = []
    for key in keys:
        cells = []
        for r in runs:
            recs = [e for e in r.evals if _num(e.get(key))]
            if not recs:
                cells.append("—")
                continue
            a, b = recs[0], recs[-1]

            def one(e):
                se = e.get(f"{key}_se")
                return fmt(e[key]) + (f" ± {se:.2g}" if _num(se) else "")

            sa, sb = a.get("step", "?"), b.get("step", "?")
            cells.append(f"{one(b)} (step {sb})" if a is b else f"{one(a)} → {one(b)} (step {sa} → {sb})")
        rows.append([f"`{key}`"] + cells)
    return rows


def write_markdown(runs: list[Run], plots: list[str], out: Path, last: int) -> Path:
    """``report.md`` (layout in the module docstring)."""
    names = [r.name for r in runs]
    md = ["# grpokit report", ""]
    md += _table(["run", "folder", "state", "steps logged", "last step", "evaluations"],
                 [[r.name, f"`{r.path}`", str(r.status.get("state", "unknown")), str(len(r.metrics)),
                   str(r.metrics[-1].get("step", "—") if r.metrics else "—"), str(len(r.evals))] for r in runs])
    final = _final_rows(runs, last)
    md += ["", "## Final training numbers", "",
           f"Each cell: value at the last logged step (mean of the last {last} steps in brackets)."]
    md += [""] + (_table(["metric"] + names, final) if final else ["No training metrics were logged."])
    ev = _eval_rows(runs)
    md += ["", "## Held-out evaluation", "",
           "First → last evaluation (step 0 is before training), ± standard error where logged."]
    md += [""] + (_table(["metric"] + names, ev) if ev else ["No held-out evaluation was logged."])
    # "n" is the trainer's eval field, "n_questions" what evaluate_samples returns
    sizes = [e.get("n", e.get("n_questions")) for r in runs for e in r.evals]
    small = sorted({int(n) for n in sizes if _num(n) and n < 50})
    if small:
        md += ["", f"Note: evaluations over {', '.join(map(str, small))} questions (< 50): intervals are wide."]
    phases = [p for p in PHASES if any(r.curve("metrics", p)[1] for r in runs)]
    phase_rows = []
    for r in runs:
        _, step = r.curve("metrics", "time/step")
        # Every phase is averaged over all steps: a held-out evaluation runs only every few steps,
        # so its mean per *evaluated* step would dwarf the step it is compared with.
        n = len(step)
        means = {p: sum(ys) / max(n, len(ys)) for p in phases if (ys := r.curve("metrics", p)[1])}
        if means:
            total = sum(means[p] for p in means if p != "time/eval") if not step else sum(step) / n
            total += means.get("time/eval", 0.0)  # time/step does not include evaluation
            phase_rows.append([r.name] + [f"{fmt(means[p])} s ({100 * means[p] / total:.0f}%)" if p in means and total
                                          else "—" for p in phases] + [f"{fmt(total)} s"])
    if phase_rows:
        md += ["", "## Time per step", "",
               "Mean seconds per optimizer step and share of the total; held-out evaluation is spread over all steps."]
        md += [""] + _table(["run"] + [p.split("/")[1] for p in phases] + ["step"], phase_rows)
    md += ["", "## Config differences", ""]
    if len(runs) < 2:
        md.append("One run: nothing to compare.")
    else:
        diff = config_diff(runs)
        md += _table(["key"] + names, [[f"`{k}`"] + [fmt(v) if v is not None else "(absent)" for v in vals]
                                        for k, vals in diff]) if diff else ["The configs are identical."]
    if plots:
        md += ["", "## Plots", ""] + [f"![{p}]({p}.png)" for p in plots]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``grpokit report RUN_DIR [RUN_DIR ...] [--out DIR] [--smooth W] [--last N]``."""
    ap = argparse.ArgumentParser(prog="grpokit report", description="Plots and a Markdown summary of run folders.")
    ap.add_argument("runs", nargs="+", help="run folders written by `grpokit train`")
    ap.add_argument("--out", help="output folder (default: RUN_DIR/report for one run, ./report for several)")
    ap.add_argument("--smooth", type=float, default=0.05,
                    help="moving-average window for training curves, as a share of the run's steps (min 3 steps); "
                         "0 = raw curves only")
    ap.add_argument("--last", type=int, default=10, help="steps averaged for the final-numbers table")
    args = ap.parse_args(argv)
    if not 0 <= args.smooth <= 1:
        ap.error(f"--smooth must be in [0, 1], got {args.smooth}")
    if args.last < 1:
        ap.error(f"--last must be >= 1, got {args.last}")
    try:
        runs = load_runs(args.runs)
    except FileNotFoundError as e:
        print(f"grpokit report: {e}; pass folders written by `grpokit train`", file=sys.stderr)
        return 2
    for r in runs:
        if not r.metrics and not r.evals:
            print(f"grpokit report: warning: {r.path} has no metrics.jsonl or eval.jsonl records", file=sys.stderr)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("grpokit report: matplotlib is missing; install it with `pip install 'grpokit[plots]'`", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else (runs[0].path / "report" if len(runs) == 1 else Path("report"))
    out.mkdir(parents=True, exist_ok=True)
    drawn = [p.name for p in PLOTS if draw(p, runs, out / f"{p.name}.png", args.smooth)]
    md = write_markdown(runs, drawn, out, args.last)
    print(f"wrote {md} and {len(drawn)} plots to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
