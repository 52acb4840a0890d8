"""The ``grpokit`` command line: ``train``, ``eval``, ``tasks`` and the tools built on them."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from transformers.utils import logging as hf_logging

from grpokit import models
from grpokit.config import TrainConfig, add_config_args, make, overrides_from
from grpokit.evaluation import command as eval_command
from grpokit.tasks import check_task_options, task_names
from grpokit.tasks.files import check_data_file
from grpokit.train.loop import train
from grpokit.train.dist import Dist, check_supported, torchrun_command
from grpokit.evaluation.check import main as check_main

# The names train/sft.py and datagen/sample.py import (they belong in grpokit.config now).


def check_inputs(model: str, task: str, task_options: dict) -> None:
    """What can be checked before anything loads: the model folder or hub id (an embedded alias is
    converted on first use, so only named), the task's name and options, a task file's path."""
    if model not in models.ALIASES:
        models.resolve(model)
    check_task_options(task, task_options)
    if task.endswith((".jsonl", ".json", ".parquet")):
        check_data_file(Path(task))


LAUNCH_FLAGS = ("--nproc", "--nnodes", "--rdzv-endpoint", "--rdzv-id")


def _without_launch_flags(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in LAUNCH_FLAGS:
            skip = True
        elif not a.startswith(tuple(f + "=" for f in LAUNCH_FLAGS)):
            out.append(a)
    return out


def _run_forwarding_signals(cmd: list[str]) -> int:
    """Run torchrun in its own session and hand it every Ctrl-C (SIGINT), SIGTERM and SIGHUP this
    launcher gets, once each: torchrun passes it to every rank, each finishes its step, rank 0 saves,
    all stop (see grpokit.train.dist). In the terminal's process group torchrun would get a
    Ctrl-C twice (from the terminal and from us), and ``subprocess.call`` would SIGKILL it on the
    launcher's KeyboardInterrupt, leaving the ranks without a stop."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, start_new_session=True)
    got: list[int] = []

    def forward(signum, frame):
        got.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    caught = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.signal(s, forward) for s in caught}
    try:
        rc = proc.wait()
        # torchrun ends with 1 after passing a signal on, even when every rank stopped cleanly: say interrupted
        return 128 + got[0] if got and rc != 0 else rc
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def cmd_train(args) -> int:
    cfg = make(TrainConfig, args.config, overrides_from(args))
    check_inputs(cfg.model, cfg.task, cfg.task_options)
    if (args.nproc > 1 or args.nnodes > 1) and "WORLD_SIZE" not in os.environ:  # start torchrun, which runs us N times
        if cfg.prompts_per_step % (args.nproc * args.nnodes):
            raise ValueError(f"prompts_per_step {cfg.prompts_per_step} does not split over {args.nproc * args.nnodes} "
                             f"processes: use a multiple of {args.nproc * args.nnodes}")
        check_supported(cfg, Dist(world=args.nproc * args.nnodes))  # the rest of what each rank would refuse, once
        after = args.argv[args.argv.index("train") + 1:]
        cmd = torchrun_command(_without_launch_flags(after), nproc=args.nproc, nnodes=args.nnodes,
                               rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id)
        return _run_forwarding_signals(cmd)
    try:
        train(cfg)
    except KeyboardInterrupt:
        print("Interrupted; the checkpoint above holds the last finished step.", file=sys.stderr)
        return 130
    return 0


def cmd_eval(args) -> int:
    return eval_command.run(args)


def cmd_rewards(args) -> int:
    if not args.rest or args.rest[0] != "check":
        print("usage: grpokit rewards check --task NAME [--model M | --completions FILE] [-n 32] [-g 4]", file=sys.stderr)
        return 2

    return check_main(args.rest[1:])


def cmd_tasks(args) -> int:
    print("\n".join(task_names()))
    return 0


def _delegate(module: str):
    """A subcommand whose parser lives in ``module.main(argv)`` (it gets the remaining arguments)."""

    def run(args) -> int:
        return importlib.import_module(module).main(args.rest)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grpokit", description="GRPO training, evaluation and inspection for language models.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model with GRPO",
                       description="Train with GRPO. Options come from --config FILE (YAML) and --key value "
                                   "overrides (override wins). The resolved config is saved in the run folder.")
    t.add_argument("--config", help="YAML file of config keys")
    launch = t.add_argument_group("processes (data parallelism through torchrun; not saved in the config: a run "
                                  "resumes on any number)")
    launch.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="processes on this node: starts `torchrun --nproc-per-node N -m grpokit train ...` "
                             "(gloo on CPU, NCCL with one GPU each on CUDA); prompts_per_step must divide by the total; "
                             "--sharding fsdp splits the model over them (FSDP2)")
    launch.add_argument("--nnodes", type=int, default=1, metavar="N",
                        help="nodes taking part; run the same command on each (needs --rdzv-endpoint)")
    launch.add_argument("--rdzv-endpoint", default="", metavar="HOST:PORT",
                        help="torchrun's c10d rendezvous address, reachable from every node")
    launch.add_argument("--rdzv-id", default="grpokit", metavar="ID", help="job id shared by the nodes of one run")
    add_config_args(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="greedy accuracy, pass@1 over k samples, pass@k and cons@k with error bars",
                       description="Evaluate a model, checkpoint or run folder on a task's held-out split: greedy "
                                   "accuracy, R1's pass@1 over k samples (T=0.6, top-p=0.95), unbiased pass@k and "
                                   "cons@k (majority vote), each with a standard error and a 95% interval.")
    eval_command.add_arguments(e)
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="plots and a Markdown summary of one or more runs", add_help=False)
    r.set_defaults(func=_delegate("grpokit.evaluation.report"))

    rc = sub.add_parser("rewards", help="reward debugging: `grpokit rewards check --task NAME [--model M] [-n 32]`",
                        add_help=False)
    rc.set_defaults(func=cmd_rewards)

    x = sub.add_parser("explore", help="local web page: groups, rewards, baselines, advantages, live runs", add_help=False)
    x.set_defaults(func=_delegate("grpokit.explorer.server"))

    for name, module, help_ in (("sft", "grpokit.train.sft", "supervised fine-tuning on prompt/response JSONL"),
                                ("sample", "grpokit.datagen.sample",
                                 "rejection sampling into an SFT dataset (cold start, distillation data)"),
                                ("pipeline", "grpokit.pipeline", "run a multi-stage recipe (r1_zero, r1, distill)")):
        d = sub.add_parser(name, help=help_, add_help=False)
        d.set_defaults(func=_delegate(module))

    ts = sub.add_parser("tasks", help="list the built-in task names")
    ts.set_defaults(func=cmd_tasks)
    return p


_DELEGATED = {"report", "explore", "rewards", "sft", "sample", "pipeline"}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in _DELEGATED:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hf_logging.disable_progress_bar()
    if not args.verbose:
        hf_logging.set_verbosity_error()
    try:
        return args.func(args)
    except (models.ModelNotFound, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"grpokit {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
