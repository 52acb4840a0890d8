"""KL estimators against hand-computed values."""

import math

import pytest
import torch

from grpokit.algo.kl import KL_ESTIMATORS, get_kl_estimator, kl_k1, kl_k2, kl_k3, sequence_kl


def test_estimators_at_log_ratio_one():
    logp, ref = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])  # x = logp - ref = 1
    assert kl_k1(logp, ref).item() == pytest.approx(1.0)
    assert kl_k2(logp, ref).item() == pytest.approx(0.5)
    assert kl_k3(logp, ref).item() == pytest.approx(0.3678794, abs=1e-6)  # e^-1 + 1 - 1


def test_k3_matches_exact_kl_in_expectation():
    # pi = (0.7, 0.3), ref = (0.4, 0.6): KL = 0.7 ln(7/4) + 0.3 ln(1/2) = 0.1838011
    p, q = torch.tensor([0.7, 0.3]), torch.tensor([0.4, 0.6])
    for est in ("k1", "k3"):
        expected = (p * KL_ESTIMATORS[est](p.log(), q.log())).sum().item()
        assert expected == pytest.approx(0.7 * math.log(7 / 4) + 0.3 * math.log(0.5), abs=1e-6)


def test_sequence_kl_sums_masked_tokens():
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -2.0, -9.0], [-0.5, -1.0, -0.2]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # row 0: 0.5 + 1.0 (third masked); row 1: 0 + 0.5 - 0.3
    torch.testing.assert_close(sequence_kl(logp, ref, mask), torch.tensor([1.5, 0.2]))


def test_unknown_estimator():
    with pytest.raises(ValueError, match="k4.*k1"):
        get_kl_estimator("k4")
