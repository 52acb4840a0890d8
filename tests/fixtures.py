"""Tiny, locally built models for tests and examples: no download, seconds to build.

``build_tiny_model(path)`` writes a Hugging Face folder with a 2-layer Llama and a character-level
tokenizer that has a ChatML chat template, so every code path (chat rendering, EOS, padding,
checkpoints) is exercised exactly as with a real model.
"""

from __future__ import annotations

from pathlib import Path

CHARS = list("0123456789+-*/=()., abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ?!:<>\\{}\n")
SPECIAL = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + CHARS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(SPECIAL)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<|im_end|>",
                                  unk_token="<unk>", bos_token="<|im_start|>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_tiny_model(path: str | Path, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     seed: int = 0) -> Path:
    """Write a tiny Llama + tokenizer to ``path`` (a folder ``from_pretrained`` and ``--model`` accept)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_tiny_classifier(path: str | Path, *, hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Write a tiny ``LlamaForSequenceClassification`` (one output) + the same tokenizer to ``path``:
    a stand-in reward model for tests of ``reward_model(...)``."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    path = Path(path)
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, num_labels=1,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(cfg)
    with torch.no_grad():  # a random head gives near-zero scores; widen it so texts score visibly apart
        model.score.weight.mul_(50)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def assert_same_adam_update(pa: dict, pb: dict, *, atol: float = 1e-6, max_frac: float = 2e-3) -> None:
    """Two state dicts after the same AdamW steps, computed two ways (micro-batch split, skipped
    groups, ...): equal to ``atol`` except for a few weights.

    Adam moves a weight by about ``lr`` whatever the size of its gradient once ``|g| >> eps``, so a
    gradient that is zero up to rounding (``|g| ~ 1e-9``) moves its weight by a rounding-dependent
    amount. Summing in another order (AVX2 instead of AVX-512 kernels) changes those few weights
    (measured: at most 3 of 8,192 per matrix, by up to 1.7e-5 at lr 1e-2); a real difference in the
    update (another gradient direction) moves most of them. So: at most ``max_frac`` of each tensor's
    weights may differ by more than ``atol``.
    """
    problem = adam_update_mismatch(pa, pb, atol=atol, max_frac=max_frac)
    assert problem is None, problem


def adam_update_mismatch(pa: dict, pb: dict, *, atol: float = 1e-6, max_frac: float = 2e-3) -> str | None:
    """None when :func:`assert_same_adam_update` holds, else what differs."""
    if pa.keys() != pb.keys():
        return f"different parameters: {sorted(set(pa) ^ set(pb))}"
    for k in pa:
        off = (pa[k].float() - pb[k].float()).abs() > atol
        if off.float().mean().item() > max_frac:
            return f"{k}: {int(off.sum())} of {off.numel()} weights differ by more than {atol}"
    return None
