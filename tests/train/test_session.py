"""The run frame's parts: Ctrl-C inside the update, the lock, the thread settings, SFT's guards."""

import os
import signal
import socket

import pytest
import torch

from grpokit.config import make
from grpokit.pipeline.runner import model_hash
from grpokit.train import checkpoint as ckpt, determinism
from grpokit.train.interrupt import GracefulInterrupt
from grpokit.run_folder import RunReader
from grpokit.train.session import LOCK, RunLocked, acquire_lock, release_lock
from grpokit.train.sft import SFTConfig, train_sft
from tests.test_sft import _data


def test_a_second_ctrl_c_inside_the_update_waits_for_its_end():
    seen = []
    with GracefulInterrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)  # first: finish the step
        assert interrupt.requested
        with pytest.raises(KeyboardInterrupt):
            with interrupt.deferred():
                os.kill(os.getpid(), signal.SIGINT)  # second, mid-update: not here...
                seen.append("update finished")
        assert seen == ["update finished"]  # ...but once the block ended
        with pytest.raises(KeyboardInterrupt):  # outside the update a second Ctrl-C stops at once
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass


def test_lock_of_another_host_is_respected_and_a_garbled_one_taken_over(tmp_path):
    (tmp_path / LOCK).write_text(f"1 not-{socket.gethostname()}\n")
    with pytest.raises(RunLocked, match="on not-"):
        acquire_lock(tmp_path)
    (tmp_path / LOCK).write_text("")  # its writer died between create and write
    lock = acquire_lock(tmp_path)
    assert lock.read_text().split() == [str(os.getpid()), socket.gethostname()]
    release_lock(lock)
    assert not lock.exists()


def test_deterministic_refuses_several_cpu_threads_and_threads_0_is_one_for_a_tiny_model(tiny_model):
    with pytest.raises(ValueError, match="deterministic runs on the CPU use one thread"):
        determinism.setup(threads=2, deterministic=True, seed=0, device="cpu")
    from transformers import AutoModelForCausalLM

    before = torch.get_num_threads()
    try:
        assert determinism.auto_threads(AutoModelForCausalLM.from_pretrained(tiny_model)) == 1
    finally:
        torch.set_num_threads(before)


def _sft(tiny_model, tmp_path, name, **kw):
    return make(SFTConfig, overrides={**dict(model=tiny_model, data=_data(tmp_path), out=str(tmp_path / name), epochs=1,
                                             batch_size=4, micro_batch_size=4, lr=1e-3, progress=False), **kw})


def test_sft_skips_non_finite_steps_and_stops_after_too_many(tiny_model, tmp_path, monkeypatch):
    real = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **kw: real(*a, **kw) * float("nan"))
    with pytest.raises(RuntimeError, match="max_skipped_steps=2"):
        train_sft(_sft(tiny_model, tmp_path, "nan", max_skipped_steps=2))
    run = tmp_path / "nan"
    assert [m["optim/skipped_steps"] for m in RunReader(run).metrics()] == [1, 1]
    assert RunReader(run).status()["state"] == "failed"
    assert model_hash(ckpt.latest(run)) == model_hash(tiny_model)  # no step reached the weights


def test_sft_resume_refuses_another_config_and_the_lock_keeps_a_second_run_off(tiny_model, tmp_path):
    train_sft(_sft(tiny_model, tmp_path, "run", stop_after=1))
    with pytest.raises(ValueError, match="--override lr"):
        train_sft(_sft(tiny_model, tmp_path, "run", resume=True, lr=2e-3))
    with pytest.raises(ValueError, match="batch_size cannot change"):  # not even with --override
        train_sft(_sft(tiny_model, tmp_path, "run", resume=True, batch_size=2, override="batch_size"))
    (tmp_path / "run" / LOCK).write_text(f"{os.getppid()}\n")
    with pytest.raises(RunLocked):
        train_sft(_sft(tiny_model, tmp_path, "run", resume=True))
    (tmp_path / "run" / LOCK).unlink()
    train_sft(_sft(tiny_model, tmp_path, "run", resume=True))
    assert RunReader(tmp_path / "run").status()["state"] == "finished"


def test_a_resume_records_every_change_and_refuses_what_may_not_change(tmp_path):
    import yaml

    from grpokit.train.session import check_config

    saved = {"lr": 1.0, "threads": 0, "stop_after": 1, "resume": False, "group_size": 4}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    now = {**saved, "threads": 2, "stop_after": 0, "resume": True}  # how it runs, and the invocation's own keys
    assert check_config(tmp_path, now, "", "grpokit train") == {"threads": [0, 2]}  # allowed, recorded (not silent)
    with pytest.raises(ValueError, match=r"lr: 1.0 -> 2.0.*drop --lr.*--override lr"):
        check_config(tmp_path, {**now, "lr": 2.0}, "", "grpokit train")
    assert check_config(tmp_path, {**now, "lr": 2.0}, "lr", "grpokit train") == {"threads": [0, 2], "lr": [1.0, 2.0]}
    with pytest.raises(ValueError, match=r"group_size cannot change.*\(why\).*--override cannot allow"):
        check_config(tmp_path, {**now, "group_size": 8}, "group_size", "grpokit train", fixed={"group_size": "why"})


def test_a_ctrl_c_deferred_to_the_end_of_the_update_saves_the_step_it_completed(tmp_path, capsys):
    from grpokit.train.session import RunSession

    saved = []
    session = RunSession(tmp_path / "run", {"lr": 1.0}, resume=False)
    with pytest.raises(KeyboardInterrupt):
        with session:
            session.begin(0, 3, lambda step, at: saved.append((step, at)) or tmp_path, position=lambda: "after")
            with session.critical():
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)  # the second, mid-update: comes when the block ends
                session.completed(1, {"loss": 0.5})
    assert saved == [(0, "after"), (1, "after")]
    assert RunReader(tmp_path / "run").metrics() == [{"step": 1, "loss": 0.5}]
    assert RunReader(tmp_path / "run").status()["state"] == "interrupted"
    assert RunReader(tmp_path / "run").status()["step"] == 1 and not (tmp_path / "run" / LOCK).exists()
    assert f"continue with: grpokit train --out {tmp_path / 'run'} --resume true" in capsys.readouterr().err
