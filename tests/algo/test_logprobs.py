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


def _whole_product(h, w, bias, y, tau):
    return selective_logprobs(torch.nn.functional.linear(h, w, bias)[None], y[None], tau)[0]


def test_head_logprobs_gradient_under_any_incoming_gradient_bias_included():
    """The gradient formed in the forward pass, scaled by a per-position incoming gradient (a loss
    weights each token differently), equals autograd's through the whole product, bias included."""
    torch.manual_seed(1)
    h, w = torch.randn(9, 6, requires_grad=True), torch.randn(13, 6, requires_grad=True)
    bias = torch.randn(13, requires_grad=True)
    y, g = torch.randint(0, 13, (9,)), torch.randn(9)
    logp, ent = head_logprobs(h, w, y, 1.3, bias=bias, chunk=4)
    assert ent is None
    got = torch.autograd.grad((logp * g).sum(), (h, w, bias))
    want = torch.autograd.grad((_whole_product(h, w, bias, y, 1.3) * g).sum(), (h, w, bias))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=2e-6, atol=1e-6)
    h2 = h.detach().requires_grad_(True)  # only the hidden states need a gradient (frozen head)
    (gh,) = torch.autograd.grad((head_logprobs(h2, w.detach(), y, 1.3, bias=bias.detach())[0] * g).sum(), (h2,))
    assert torch.allclose(gh, want[0], rtol=2e-6, atol=1e-6)


def test_head_logprobs_without_gradient_and_under_autocast():
    torch.manual_seed(2)
    h, w = torch.randn(10, 8, requires_grad=True), torch.randn(17, 8, requires_grad=True)
    y = torch.randint(0, 17, (10,))
    with torch.no_grad():
        logp, ent = head_logprobs(h, w, y, 0.9, entropy=True, chunk=3)
    logits = torch.nn.functional.linear(h, w)[None].detach()
    assert torch.allclose(logp, selective_logprobs(logits, y[None], 0.9)[0], rtol=2e-6, atol=1e-6)
    assert torch.allclose(ent, token_entropy(logits, 0.9)[0], rtol=2e-6, atol=1e-6)
    # bf16 autocast: the products in bf16 as linear's would be, the softmax in fp32, fp32 gradients
    g = torch.randn(10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp = head_logprobs(h, w, y, 0.9, chunk=4)[0]
        want = _whole_product(h, w, None, y, 0.9)
    assert logp.dtype == torch.float32 and torch.allclose(logp, want, atol=1e-5)
    got = torch.autograd.grad((logp * g).sum(), (h, w))
    want_g = torch.autograd.grad((want * g).sum(), (h, w))
    for a, b in zip(got, want_g):
        assert a.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-2, atol=1e-2)
