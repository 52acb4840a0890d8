"""Shaping rewards: language consistency, DAPO's soft overlong penalty, n-gram repetition.

They read ``completion_ids`` (one list of generated token ids per completion, without padding),
which the trainer passes to every reward function as a column.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from grpokit.algo.shaping import overlong_penalty as overlong_penalty_fn
from grpokit.rewards import register, register_factory

# --- language consistency ------------------------------------------------------------------

_LATIN_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")
LANGUAGES = ("en", "zh")


def reasoning_text(text: str) -> str:
    """The chain of thought: inside ``<think>...</think>``, or before ``</think>`` (pre-filled
    template), or the whole completion when it has no think tags."""
    if "</think>" in text:
        text = text.split("</think>", 1)[0]
        return text.split("<think>", 1)[1] if "<think>" in text else text
    return text.split("<think>", 1)[1] if "<think>" in text else text


def language_words(text: str) -> tuple[int, int]:
    """``(English, Chinese)`` word counts of ``text``: runs of Latin letters (an apostrophe inside one,
    "don't", keeps it one word) and CJK ideographs, one word each (Chinese has no spaces). What
    :func:`language_share` and the trainer's ``behaviour/cjk_frac`` both count."""
    return len(_LATIN_WORD.findall(text)), len(_CJK.findall(text))


SCRIPTS = {"latin": "en", "cjk": "zh"}  # script names (grpokit sample, the pipeline's eval) -> language


def language_share(text: str, target: str = "en") -> float:
    """Share of words of ``text`` in ``target`` among its English and Chinese words.

    DeepSeek-R1 (2025, section 2.3.2): "the proportion of target language words in the CoT".
    English words are runs of Latin letters; each CJK ideograph counts as one Chinese word (Chinese
    has no spaces). ``target``: ``en``/``zh`` or ``latin``/``cjk``. No word at all gives 0.0 (a reward
    of 1 would pay the policy to write none). The reward, the sampling filter and the pipeline's
    reported language consistency all call this one function.
    """
    lang = SCRIPTS.get(target, target)
    if lang not in LANGUAGES:
        raise ValueError(f"unknown script {target!r}: language consistency supports {LANGUAGES} "
                         f"(or the scripts {sorted(SCRIPTS)})")
    en, zh = language_words(text)
    if en + zh == 0:
        return 0.0
    return (en if lang == "en" else zh) / (en + zh)


@register_factory("language_consistency")
def language_consistency_reward(target: str = "en"):
    """``language_consistency(target='zh')``; a per-row ``language`` column overrides ``target``."""
    language_share("", target)  # rejects an unknown target now, not at the first call

    def language_consistency(prompts, completions, language: Sequence[str] | None = None, **_) -> list[float]:
        """Share of target-language words in the reasoning (0.0 .. 1.0)."""
        langs = list(language) if language is not None else [target] * len(completions)
        return [language_share(reasoning_text(c), lang or target) for c, lang in zip(completions, langs)]

    return language_consistency


language_consistency = register("language_consistency")(language_consistency_reward())


# --- DAPO soft overlong punishment ---------------------------------------------------------

def overlong_value(length: int, max_len: int, cache: int) -> float:
    """DAPO's soft overlong penalty of one length: :func:`grpokit.algo.overlong_penalty` (eq. 13),
    the one implementation, evaluated in float64."""
    return float(overlong_penalty_fn(torch.tensor([length], dtype=torch.float64), max_len, cache)[0])


def _lengths(completions, completion_ids) -> list[int]:
    if completion_ids is None:
        raise ValueError("this reward needs the `completion_ids` column (token ids of each completion)")
    out = []
    for ids in completion_ids:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out.append(len(ids))
    return out


@register_factory("overlong")
def overlong_penalty(max_len: int | None = None, cache: int | None = None):
    """DAPO's soft overlong penalty: ``overlong(max_len=1024, cache=256)`` in a config.

    ``max_len`` is the generation limit (``max_new_tokens``); without it, the reward reads the
    ``max_new_tokens`` column at call time. ``cache`` (``L_cache``, the ramp length) defaults to a
    fifth of ``max_len`` (DAPO: 4096 of 20480).
    """
    if max_len is not None and (max_len < 1 or (cache is not None and not 0 < cache <= max_len)):
        raise ValueError(f"overlong needs max_len >= 1 and 0 < cache <= max_len, got {max_len}, {cache}")

    def overlong(prompts, completions, completion_ids=None, max_new_tokens=None, **_) -> list[float]:
        """0 for short completions, a linear ramp to -1 over the last ``cache`` tokens, -1 beyond."""
        lengths = _lengths(completions, completion_ids)
        out = []
        for i, n in enumerate(lengths):
            lmax = max_len if max_len is not None else _row(max_new_tokens, i)
            if lmax is None:
                raise ValueError("overlong needs max_len: write overlong(max_len=1024, cache=256) in the reward "
                                 "config, or have the trainer pass a max_new_tokens column")
            c = cache if cache is not None else max(1, int(lmax) // 5)
            out.append(overlong_value(n, int(lmax), c))
        return out

    return overlong


def _row(col: Any, i: int):
    if col is None:
        return None
    return col[i] if isinstance(col, (list, tuple)) else col


overlong = register("overlong")(overlong_penalty())


# --- n-gram repetition ---------------------------------------------------------------------

def repetition_value(tokens: Sequence, n: int = 3, max_penalty: float = 1.0) -> float:
    """``-max_penalty * (1 - distinct n-grams / n-grams)``; 0.0 when there are fewer than ``n`` tokens.

    The n-gram repetition penalty of Yeo et al. 2025 ("Demystifying Long Chain-of-Thought
    Reasoning in LLMs", arXiv 2502.03373): a completion that loops gets close to ``-max_penalty``.
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return -max_penalty * (1.0 - len(set(grams)) / len(grams))


@register_factory("repetition")
def repetition_penalty(ngram: int = 3, max_penalty: float = 1.0):
    """``repetition(ngram=4, max_penalty=0.5)``: n-grams of token ids (of words without ids)."""
    if ngram < 1 or max_penalty < 0:
        raise ValueError(f"repetition needs ngram >= 1 and max_penalty >= 0, got {ngram}, {max_penalty}")

    def repetition(prompts, completions, completion_ids=None, **_) -> list[float]:
        """Negative share of repeated n-grams (0.0 for no repetition)."""
        if completion_ids is None:
            seqs = [c.split() for c in completions]
        else:
            seqs = [ids.tolist() if hasattr(ids, "tolist") else list(ids) for ids in completion_ids]
        return [repetition_value(s, ngram, max_penalty) for s in seqs]

    return repetition


repetition = register("repetition")(repetition_penalty())
