"""Log-probs and entropies of sampled tokens against hand-computed values."""

import math

import pytest
import torch

from grpokit.algo.logprobs import head_logprobs, selective_logprobs, token_entropy

# one position, vocab 2, logits [0, ln 3]: softmax [0.25, 0.75]
LOGITS = torch.tensor([[[0.0, math.log(3.0)]]])


def test_selective_logprobs_picks_the_sampled_token():
    assert selective_logprobs(LOGITS, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))
    assert selective_logprobs(LOGITS, torch.tensor([[0]])).item() == pytest.approx(math.log(0.25))


def test_selective_logprobs_divides_by_the_temperature():
    # tau 2: logits [0, ln 3 / 2] -> softmax [1 / (1 + sqrt 3), sqrt 3 / (1 + sqrt 3)] = [0.3660254, 0.6339746]
    assert selective_logprobs(LOGITS, torch.tensor([[1]]), 2.0).item() == pytest.approx(math.log(0.6339746), abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        selective_logprobs(LOGITS, torch.tensor([[1]]), 0.0)


def test_token_entropy():
    # -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351
    assert token_entropy(LOGITS).item() == pytest.approx(0.5623351, abs=1e-6)


def test_selective_logprobs_carries_the_gradient():
    logits = LOGITS.clone().requires_grad_(True)
    selective_logprobs(logits, torch.tensor([[1]])).sum().backward()
    # d log softmax_1 / d z = onehot(1) - softmax = [-0.25, 0.25]
    torch.testing.assert_close(logits.grad, torch.tensor([[[-0.25, 0.25]]]))


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_head_logprobs_equals_the_whole_product(chunk):
    """Chunked output layer == logits of the whole product, values, entropies and gradients."""
    torch.manual_seed(0)
    h, w, bias = torch.randn(7, 5, requires_grad=True), torch.randn(11, 5, requires_grad=True), torch.randn(11)
    y = torch.randint(0, 11, (7,))
    logp, ent = head_logprobs(h, w, y, 0.7, bias=bias, entropy=True, chunk=chunk)
    grads = torch.autograd.grad(logp.sum(), (h, w))
    logits = torch.nn.functional.linear(h, w, bias)[None]
    want = selective_logprobs(logits, y[None], 0.7)[0]
    want_grads = torch.autograd.grad(want.sum(), (h, w))
    # equal up to fp32 rounding: a few ulps, as products of other shapes sum in another order (AVX2 kernels)
    assert torch.allclose(logp, want, rtol=2e-6, atol=1e-6)
    assert torch.allclose(ent, token_entropy(logits, 0.7)[0], rtol=2e-6, atol=1e-6)
    for g, wg in zip(grads, want_grads):
        assert torch.allclose(g, wg, rtol=2e-6, atol=1e-6)
