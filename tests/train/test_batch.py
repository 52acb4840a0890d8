"""The shared-prompt forward equals the per-sequence forward, values and gradients."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from grpokit.train.batch import TrainBatch, group_chunks, group_logprobs, sequence_logprobs


@pytest.mark.parametrize("lengths", [[5, 2, 5, 5, 4, 5], [1, 0, 3, 5, 5, 1], [1, 1, 1, 0, 1, 1], [5, 2, 2, 3, 3, 3]])
def test_group_forward_equals_per_sequence_forward(tiny_model, lengths):
    """Packed groups of unequal widths, one-token and empty completions: same values and gradients."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(0)
    B, G, P, T = 2, 3, 6, 5
    pm = torch.ones(B, P, dtype=torch.long)
    pm[0, :2] = 0  # left padding
    cm = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()
    batch = TrainBatch(torch.randint(4, model.config.vocab_size, (B, P)).repeat_interleave(G, 0), pm.repeat_interleave(G, 0),
                       torch.randint(4, model.config.vocab_size, (B * G, T)), cm, torch.randn(B * G))
    rows = list(range(B * G))
    grads = []
    for fn in (lambda: sequence_logprobs(model, batch, rows, 0.7, entropy=True),
               lambda: group_logprobs(model, batch, rows, G, 0.7, entropy=True)):
        model.zero_grad()
        logp, mask, ent = fn()
        (logp * mask).sum().backward()
        grads.append((logp.detach(), ent, torch.cat([p.grad.flatten() for p in model.parameters()])))
        assert torch.equal(mask, cm[:, :mask.shape[1]])
    (l0, e0, g0), (l1, e1, g1) = grads
    m = cm[:, :l0.shape[1]].bool()
    assert torch.allclose(l0[m], l1[m], atol=1e-5)
    assert torch.allclose(e0[m], e1[m], atol=1e-5)
    assert torch.allclose(g0, g1, rtol=1e-4, atol=1e-5), (g0 - g1).abs().max()


def test_group_chunks_skip_only_all_zero_groups():
    adv = torch.tensor([0.0, 0.0, 1.0, -1.0, 0.0, 0.0, 0.5, 0.0])
    assert group_chunks(adv, 2, 4, skip_zero=True) == [[2, 3, 6, 7]]
    assert group_chunks(adv, 2, 2, skip_zero=False) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert group_chunks(adv, 4, 1, skip_zero=True) == [[0, 1, 2, 3], [4, 5, 6, 7]]
