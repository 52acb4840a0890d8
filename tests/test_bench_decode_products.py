"""bench/decode_products.py: every library's product is checked against torch's, and timed against a stream pass."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import decode_products as dp  # noqa: E402


@pytest.mark.parametrize("way", [w for w in dp.WAYS if dp.available(w)])
def test_each_way_computes_x_times_w_transposed(way):
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(48, 32, generator=g), torch.randn(5, 32, generator=g)
    (p,) = dp.prepare(way, [w], rows=5)
    torch.testing.assert_close(dp.product(way, p, x), x @ w.t(), rtol=1e-5, atol=1e-5)


def test_main_times_every_available_way_and_the_stream_pass(tiny_model, capsys):
    threads = torch.get_num_threads()
    try:
        med = dp.main(["--model", tiny_model, "--rows", "4", "--rounds", "2", "--threads", "1", "--pause", "0"])
    finally:
        torch.set_num_threads(threads)  # --threads sets this whole process's
    assert set(med) == {w for w in dp.WAYS if dp.available(w)} | {"stream"}
    assert all(s > 0 for s in med.values())
    out = capsys.readouterr().out
    assert "products per step" in out and "x stream" in out


def test_an_unknown_way_is_refused_by_name():
    with pytest.raises(SystemExit, match="unknown way.*'blas'.*pick from onednn"):
        dp.main(["--ways", "onednn,blas"])
