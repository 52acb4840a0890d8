"""Data parallelism (gloo, CPU, tiny model): N processes x B/N prompts give the one-process update;
a run resumes on another number of processes; two "nodes" on 127.0.0.1 train; bad input fails clearly."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpokit.config import make
from grpokit.train.dist import Dist, check_supported
from grpokit.train.loop import train
from grpokit.run_folder import RunReader
from tests.fixtures import assert_same_adam_update

ROOT = Path(__file__).resolve().parents[2]
DIGITS = "tests.train.rewards_for_tests:digit_share"
STEPS = 3


def _args(model, task, out, **kw):
    opts = dict(model=model, task=task, out=str(out), steps=STEPS, prompts_per_step=4, group_size=4, max_new_tokens=6,
                eval_size=0, progress=False, lr=1e-3, dtype="fp32", threads=1, rewards={DIGITS: 1.0},
                task_options={"heldout_size": 4}, beta=0.04)
    opts.update(kw)
    return opts


def _cli(opts: dict) -> list[str]:
    out = []
    for k, v in opts.items():
        out += [f"--{k}", json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool) else str(v)]
    return out


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "GRPOKIT_DIST_TIMEOUT": "90"}
    env.pop("WORLD_SIZE", None)
    return {**env, **extra}


def _launch(opts: dict, nproc: int = 2, extra_env=None, launcher=None, timeout=400):
    cmd = launcher or [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    return subprocess.run([*cmd, "-m", "grpokit", "train", *_cli(opts)], env=_env(**(extra_env or {})),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _weights(run) -> dict:
    return load_file(sorted((Path(run) / "checkpoints").glob("step_*"))[-1] / "model.safetensors")


def _assert_same(a, b):
    # fp32 reductions in another order: ~1e-7 after 3 AdamW steps of lr 1e-3, except the few weights
    # whose gradient is zero up to rounding, which Adam moves by ~lr either way (tests/fixtures.py)
    assert_same_adam_update(_weights(a), _weights(b), atol=1e-5)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    p = tmp_path_factory.mktemp("task") / "toy.jsonl"
    p.write_text("".join(json.dumps({"question": f"say {d}", "answer": str(d)}) + "\n" for d in range(10) for _ in range(4)))
    return str(p)


@pytest.fixture(scope="module")
def single(tiny_model, task, tmp_path_factory):
    """The one-process run every multi-process run must reproduce."""
    return train(make(overrides=_args(tiny_model, task, tmp_path_factory.mktemp("one") / "run")))


def test_two_processes_give_the_one_process_update(tiny_model, task, single, tmp_path):
    res = _launch(_args(tiny_model, task, tmp_path / "two"))
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same(single, tmp_path / "two")
    want, got = RunReader(single).metrics(), RunReader(tmp_path / "two").metrics()
    assert [m["step"] for m in got] == [1, 2, 3]
    for w, g in zip(want, got):  # every metric one process logs, but its own time, throughput and memory
        w, g = ({k: v for k, v in m.items() if not k.startswith(("time/", "throughput/", "memory/"))} for m in (w, g))
        assert g.keys() == w.keys()
        for key in w:  # the per-token means (loss/kl, policy/entropy, ...) too: weighted by tokens, not sequences
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6), (w["step"], key)
    assert len(RunReader(tmp_path / "two").groups(1)) == 4  # rank 0 logs every rank's groups


def test_rank_metrics_combine_as_one_process_computes_them(monkeypatch):
    """Per-token means weigh each rank by its loss tokens; a rank that trained nothing (0 tokens, entropy
    None) is left out; sums add, costs take the slowest rank, what every rank has alike is rank 0's."""
    d = Dist(rank=0, world=2)
    ranks = [({"loss/kl": 0.1, "policy/entropy": 2.0, "loss/policy": 0.25, "time/step": 1.0, "optim/grad_norm": 0.5}, 10.0),
             ({"loss/kl": 0.4, "policy/entropy": 3.0, "loss/policy": 0.5, "time/step": 3.0, "optim/grad_norm": 0.5}, 30.0)]
    monkeypatch.setattr(d, "gather", lambda obj: ranks)
    kw = dict(summed=("loss/policy",), maxed=("time/step",), same=("optim/grad_norm",))
    out = d.reduce_metrics(*ranks[0], **kw)
    assert out == {"loss/kl": pytest.approx((0.1 * 10 + 0.4 * 30) / 40), "policy/entropy": pytest.approx((20 + 90) / 40),
                   "loss/policy": 0.75, "time/step": 3.0, "optim/grad_norm": 0.5}
    ranks[1] = ({**ranks[1][0], "loss/kl": 0.0, "policy/entropy": None}, 0.0)
    assert d.reduce_metrics(*ranks[0], **kw)["policy/entropy"] == 2.0 and d.reduce_metrics(*ranks[0], **kw)["loss/kl"] == 0.1
    ranks[0] = ({**ranks[0][0], "policy/entropy": None}, 0.0)  # nobody trained: nothing to average
    assert d.reduce_metrics(*ranks[0], **kw)["policy/entropy"] is None


def test_a_two_process_run_resumes_on_one_process(tiny_model, task, single, tmp_path):
    res = _launch(_args(tiny_model, task, tmp_path / "run", stop_after=2))
    assert res.returncode == 0, res.stderr[-3000:]
    assert RunReader(tmp_path / "run").status()["state"] == "interrupted"
    train(make(overrides=_args(tiny_model, task, tmp_path / "run", resume=True)))
    _assert_same(single, tmp_path / "run")


@pytest.fixture(scope="module")
def single_no_ref(tiny_model, task, tmp_path_factory):
    """The one-process run without a reference model (beta 0)."""
    return train(make(overrides=_args(tiny_model, task, tmp_path_factory.mktemp("one_no_ref") / "run", beta=0.0)))


@pytest.mark.parametrize("beta", [0.04, 0.0], ids=["with_reference", "without_reference"])
def test_fsdp_two_processes_give_the_one_process_update(tiny_model, task, single, single_no_ref, beta, tmp_path):
    res = _launch(_args(tiny_model, task, tmp_path / "fsdp", sharding="fsdp", beta=beta))
    assert res.returncode == 0, res.stderr[-3000:]
    one = single if beta else single_no_ref
    _assert_same(one, tmp_path / "fsdp")
    want, got = RunReader(one).metrics(), RunReader(tmp_path / "fsdp").metrics()
    assert [m["step"] for m in got] == [1, 2, 3]
    for w, g in zip(want, got):
        for key in ("reward/mean", "completions/mean_length", "loss/policy", "optim/grad_norm"):
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6), (w["step"], key)
    ckpt = sorted((tmp_path / "fsdp" / "checkpoints").glob("step_*"))[-1]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(ckpt).config.architectures == ["LlamaForCausalLM"]
    assert set(_weights(tmp_path / "fsdp")) == set(_weights(one))  # tied weights written once, as unsharded


def test_fsdp_with_bf16_compute_follows_the_one_process_bf16_run(tiny_model, task, tmp_path):
    """MixedPrecisionPolicy: bf16 all-gathers over fp32 master shards, as one process's autocast over fp32
    weights. bf16 rounding differs between the two (and Adam's first steps amplify it where a gradient is
    near 0), so the check is the step-1 gradient norm and that the master weights stay fp32."""
    one = train(make(overrides=_args(tiny_model, task, tmp_path / "one", dtype="bf16", steps=1)))
    res = _launch(_args(tiny_model, task, tmp_path / "fsdp", sharding="fsdp", dtype="bf16", steps=1))
    assert res.returncode == 0, res.stderr[-3000:]
    want, got = RunReader(one).metrics()[0], RunReader(tmp_path / "fsdp").metrics()[0]
    assert got["optim/grad_norm"] == pytest.approx(want["optim/grad_norm"], rel=1e-2)
    assert {str(w.dtype) for w in _weights(tmp_path / "fsdp").values()} == {"torch.float32"}


def test_fsdp_ranks_with_fewer_micro_batches_join_with_zero_loss_passes(tiny_model, task, tmp_path):
    """Flat groups (answers 5-9 always score 0) are skipped, so with one group per micro-batch the ranks
    run different numbers of micro-batches; the short one pads with zero-loss passes (every forward and
    backward under FSDP is a collective) and the update is still the one-process one."""
    opts = dict(rewards={"tests.train.rewards_for_tests:digit_share_low_only": 1.0}, micro_batch_size=4, beta=0.0)
    one = train(make(overrides=_args(tiny_model, task, tmp_path / "one", **opts)))
    res = _launch(_args(tiny_model, task, tmp_path / "fsdp", sharding="fsdp", **opts))
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same(one, tmp_path / "fsdp")
    teaching = [[sum(1 for g in RunReader(one).groups(step)[r * 2:(r + 1) * 2] if g["reward_std"]) for r in (0, 1)]
                for step in (1, 2, 3)]  # rank r samples prompts [2r, 2r + 2) of each step
    assert any(a != b for a, b in teaching), teaching  # the padding was needed at some step


def test_an_fsdp_run_resumes_on_one_process(tiny_model, task, single, tmp_path):
    res = _launch(_args(tiny_model, task, tmp_path / "run", sharding="fsdp", stop_after=2))
    assert res.returncode == 0, res.stderr[-3000:]
    assert RunReader(tmp_path / "run").status()["state"] == "interrupted"
    opt = torch.load(tmp_path / "run" / "checkpoints" / "step_000002" / "trainer_state.pt", weights_only=False)["optimizer"]
    assert sorted(opt["state"]) == list(range(len(opt["state"])))  # the unsharded optimizer's numbering
    train(make(overrides=_args(tiny_model, task, tmp_path / "run", resume=True)))  # one process, no FSDP
    _assert_same(single, tmp_path / "run")


def test_a_one_process_run_resumes_under_fsdp(tiny_model, task, single, tmp_path):
    train(make(overrides=_args(tiny_model, task, tmp_path / "run", stop_after=1)))
    res = _launch(_args(tiny_model, task, tmp_path / "run", sharding="fsdp", resume=True))
    assert res.returncode == 0, res.stderr[-3000:]
    _assert_same(single, tmp_path / "run")


def _critic(run) -> dict:
    return load_file(sorted((Path(run) / "checkpoints").glob("step_*"))[-1] / "critic" / "value_model.safetensors")


@pytest.fixture(scope="module")
def single_ppo(tiny_model, task, tmp_path_factory):
    """The one-process PPO run (a critic with its own trunk and optimizer)."""
    return train(make(overrides=_args(tiny_model, task, tmp_path_factory.mktemp("one_ppo") / "run", algo="ppo")))


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_ppo_with_a_critic_on_two_processes_gives_the_one_process_update(tiny_model, task, single_ppo, sharding,
                                                                         tmp_path):
    """GAE's whitening sees every rank's tokens, the critic's gradients are summed (or sharded); the
    FSDP run stops at step 2 and resumes on one process (critic weights and optimizer state)."""
    stop = {"stop_after": 2} if sharding == "fsdp" else {}
    res = _launch(_args(tiny_model, task, tmp_path / "run", algo="ppo", sharding=sharding, **stop))
    assert res.returncode == 0, res.stderr[-3000:]
    if stop:
        train(make(overrides=_args(tiny_model, task, tmp_path / "run", algo="ppo", resume=True)))
    _assert_same(single_ppo, tmp_path / "run")
    want, got = _critic(single_ppo), _critic(tmp_path / "run")
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-5, msg=k)
    for w, g in zip(RunReader(single_ppo).metrics(), RunReader(tmp_path / "run").metrics()):
        for key in ("loss/value", "critic/grad_norm", "optim/grad_norm"):
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6), (w["step"], key)


class _RankOfTwo(Dist):
    """Rank ``rank`` of two inside one process: the other rank's tensors come from ``others``, in the
    order this rank's collectives ask for them."""

    def __init__(self, rank: int, other_T: int, others: list):
        super().__init__(rank=rank, world=2)
        self.other_T, self.others = other_T, list(others)

    def max(self, x):
        return max(x, self.other_T)

    def cat(self, t):
        other = self.others.pop(0)
        return torch.cat([t, other] if self.rank == 0 else [other, t])


def test_critic_advantages_of_ranks_with_different_lengths_are_the_whole_batch_ones():
    """GAE + whitening over two ranks whose completions are 3 and 5 tokens long = over the whole batch
    at once (where the short rows' padding holds whatever the critic said: it is masked)."""
    from grpokit.config import algo_preset
    from grpokit.train.update import critic_advantages_of_all_ranks

    ppo = algo_preset(make(overrides={"algo": "ppo", "beta": 0.05}))
    assert ppo.reward_beta > 0 and ppo.whiten_advantages  # the KL reward and the batch statistic are exercised
    g = torch.Generator().manual_seed(0)
    N, T = 4, 5
    lengths = torch.tensor([3, 1, 2, 3, 5, 4, 2, 5])  # rank 0's longest: 3, rank 1's: 5
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()  # [2N, T]
    rewards, values, kl = torch.rand(2 * N, generator=g), torch.randn(2 * N, T, generator=g), torch.rand(2 * N, T, generator=g)
    want_adv, want_ret = ppo.critic_advantages(rewards, values, mask, token_kl=kl)

    a, b = slice(0, N), slice(N, 2 * N)
    # rank 0 (T=3) receives rank 1's tensors as they are; rank 1 (T=5) receives rank 0's padded with zeros
    pad = lambda x: torch.cat([x, x.new_zeros(N, T - 3)], 1)  # noqa: E731
    for rank, mine, theirs, width, other_T in ((0, a, [rewards[b], values[b], mask[b], kl[b]], 3, 5),
                                               (1, b, [rewards[a], pad(values[a, :3]), pad(mask[a, :3]),
                                                       pad(kl[a, :3])], 5, 3)):
        adv, ret = critic_advantages_of_all_ranks(ppo, _RankOfTwo(rank, other_T, theirs), rewards[mine],
                                                  values[mine, :width], mask[mine, :width], kl[mine, :width])
        assert adv.shape == (N, width)
        torch.testing.assert_close(adv, want_adv[mine, :width], rtol=0, atol=1e-6)
        torch.testing.assert_close(ret, want_ret[mine, :width], rtol=0, atol=1e-6)


def _paused(marker: Path, proc: subprocess.Popen) -> int:
    """The pid a rank wrote at its ``pause`` fault, once it is there (the rank waits for a signal)."""
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.1)
    return int(marker.read_text())


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_ctrl_c_on_one_rank_stops_every_rank_with_a_checkpoint(tiny_model, task, single, sharding, tmp_path):
    """SIGINT to rank 1 alone (kill -INT): every rank finishes step 2 and stops; rank 0 saves it."""
    marker = tmp_path / "paused"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "grpokit",
           "train", *_cli(_args(tiny_model, task, tmp_path / "run", sharding=sharding, steps=5))]
    proc = subprocess.Popen(cmd, env=_env(GRPOKIT_FAULT="sampled@2:pause", GRPOKIT_FAULT_RANK="1",
                                          GRPOKIT_FAULT_MARKER=str(marker)),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    os.kill(_paused(marker, proc), signal.SIGINT)
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, out[-3000:]
    status = RunReader(tmp_path / "run").status()
    assert (status["state"], status["step"]) == ("interrupted", 2), out[-3000:]
    assert [p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*")] == ["step_000002"]
    train(make(overrides=_args(tiny_model, task, tmp_path / "run", resume=True, override="steps")))  # 3 steps
    _assert_same(single, tmp_path / "run")


def test_ctrl_c_to_the_launcher_stops_every_rank_with_a_checkpoint(tiny_model, task, single, tmp_path):
    """Ctrl-C to `grpokit train --nproc 2` (what a terminal sends): torchrun passes it to every rank."""
    marker = tmp_path / "paused"
    cmd = [sys.executable, "-m", "grpokit", "train", "--nproc", "2",
           *_cli(_args(tiny_model, task, tmp_path / "run", sharding="fsdp", steps=5))]
    proc = subprocess.Popen(cmd, env=_env(GRPOKIT_FAULT="sampled@2:pause", GRPOKIT_FAULT_RANK="0",
                                          GRPOKIT_FAULT_MARKER=str(marker)),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _paused(marker, proc)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 130, out[-3000:]
    status = RunReader(tmp_path / "run").status()
    assert (status["state"], status["step"]) == ("interrupted", 2), out[-3000:]
    train(make(overrides=_args(tiny_model, task, tmp_path / "run", resume=True, override="steps")))
    _assert_same(single, tmp_path / "run")


def test_two_nodes_on_one_machine_train(tiny_model, task, single, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "grpokit", "train", "--nproc", "1", "--nnodes", "2", "--rdzv-endpoint",
           f"127.0.0.1:{port}", "--rdzv-id", f"test{port}"]
    nodes = [subprocess.Popen([*cmd, *_cli(_args(tiny_model, task, tmp_path / f"node{i}"))], env=_env(), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [n.communicate(timeout=400)[0] for n in nodes]
    assert all(n.returncode == 0 for n in nodes), outs[0][-2000:] + outs[1][-2000:]
    written = [p for p in (tmp_path / "node0", tmp_path / "node1") if (p / "checkpoints").exists()]
    assert len(written) == 1  # rank 0's folder: the node that got rank 0
    _assert_same(single, written[0])


def test_a_world_size_that_does_not_divide_the_batch_is_refused(tiny_model, task, tmp_path):
    with pytest.raises(ValueError, match="prompts_per_step 3 does not split over 2 ranks: use a multiple of 2"):
        Dist(rank=1, world=2).share(3)
    from grpokit.cli import main

    assert main(["train", "--nproc", "2", *_cli(_args(tiny_model, task, tmp_path / "x", prompts_per_step=3))]) == 2
    assert not (tmp_path / "x").exists()


def test_bad_sharding_options_are_refused(tiny_model, task, tmp_path):
    with pytest.raises(ValueError, match="sharding.*'ddp'.*'fsdp'"):
        make(overrides=_args(tiny_model, task, tmp_path / "x", sharding="zero3"))
    with pytest.raises(ValueError, match="--sharding fsdp with LoRA is not supported yet.*--sharding ddp"):
        make(overrides=_args(tiny_model, task, tmp_path / "x", sharding="fsdp", lora_rank=8))
    shared = make(overrides=_args(tiny_model, task, tmp_path / "x", sharding="fsdp", algo="ppo", critic_trunk="shared"))
    with pytest.raises(ValueError, match="--critic_trunk shared is not supported.*--critic_trunk separate"):
        check_supported(shared, Dist(rank=0, world=2))
    from grpokit.cli import main

    assert main(["train", "--nproc", "2", *_cli(_args(tiny_model, task, tmp_path / "y", sharding="fsdp", algo="ppo",
                                                       critic_trunk="shared"))]) == 2  # refused before torchrun starts
    assert not (tmp_path / "y").exists()


def test_a_dead_rank_does_not_hang_the_others(tiny_model, task, tmp_path):
    res = _launch(_args(tiny_model, task, tmp_path / "dead"),
                  extra_env={"GRPOKIT_FAULT": "sampled@2", "GRPOKIT_FAULT_RANK": "1"}, timeout=400)
    assert res.returncode != 0
    status = RunReader(tmp_path / "dead").status()
    assert status["state"] in ("failed", "running", "interrupted")  # torchrun stops rank 0 when rank 1 dies
    assert (tmp_path / "dead" / "checkpoints").exists()  # the step-0 checkpoint: resumable
