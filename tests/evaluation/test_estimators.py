import itertools
import math

import pytest

from grpokit.evaluation.estimators import (
    SMALL_N,
    bootstrap_estimate,
    cluster_answers,
    maj_at_k,
    majority_vote,
    mean_at_k,
    mean_estimate,
    pass_at_k,
    pass_at_k_estimate,
    small_sample_note,
    wilson_interval,
)
from grpokit.rewards.math import grade


# ------------------------------------------------------------------------------------ pass@k


def test_pass_at_k_matches_closed_form_exhaustively():
    checked = 0
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                closed = 1.0 - math.comb(n - c, k) / math.comb(n, k)  # comb is 0 when k > n-c
                assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12), (n, c, k)
                checked += 1
    assert checked == sum(n * (n + 1) for n in range(1, 9))


def test_pass_at_k_is_the_share_of_k_subsets_holding_a_correct_sample():
    # The definition itself: draw k of the n samples without replacement, solved if any is correct.
    for n in range(1, 8):
        for c in range(n + 1):
            samples = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(samples, k))
                share = sum(any(s) for s in subsets) / len(subsets)
                assert pass_at_k(n, c, k) == pytest.approx(share, abs=1e-12)


def test_pass_at_1_is_c_over_n_and_edge_values():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 0, 5) == 0.0
    assert pass_at_k(5, 1, 5) == 1.0  # n - c = 4 < k = 5


@pytest.mark.parametrize("n,c,k,err", [(4, 1, 5, ValueError), (4, 5, 1, ValueError), (0, 0, 1, ValueError),
                                       (4, 1, 0, ValueError), (4.0, 1, 1, TypeError), (4, True, 1, TypeError)])
def test_pass_at_k_rejects_bad_input(n, c, k, err):
    with pytest.raises(err):
        pass_at_k(n, c, k)


def test_pass_at_k_estimate_averages_questions_with_se_across_them():
    # n=4: c=1 -> pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6 = 0.5; c=0 -> 0; c=3 -> 1.
    est = pass_at_k_estimate([4, 4, 4], [1, 0, 3], 2)
    assert est.value == pytest.approx(0.5)
    assert est.method == "normal"
    assert est.se == pytest.approx(math.sqrt(((0.0) ** 2 + 0.5**2 + 0.5**2) / 2) / math.sqrt(3))
    assert est.ci_low == pytest.approx(max(0.0, 0.5 - 1.959964 * est.se), abs=1e-6)


# --------------------------------------------------------------------------- means and intervals


def test_mean_at_k_hand_computed():
    correct = [[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    est = mean_at_k(correct)
    # per question 0.75, 0, 1 -> mean 0.583333; sample std (Bessel) sqrt(0.5416667/2) = 0.520416
    assert est.value == pytest.approx(0.5833333, abs=1e-6)
    assert est.se == pytest.approx(0.520416 / math.sqrt(3), abs=1e-5)
    assert mean_at_k(correct, k=2).value == pytest.approx((0.5 + 0 + 1) / 3)
    with pytest.raises(ValueError, match="k=5"):
        mean_at_k(correct, k=5)


def test_wilson_interval_reference_values():
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.49016, abs=1e-4), pytest.approx(0.94332, abs=1e-4))
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)


def test_binary_scores_use_wilson_and_binomial_se():
    est = mean_estimate([1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    assert est.method == "wilson"
    assert est.se == pytest.approx(math.sqrt(0.8 * 0.2 / 10))
    assert (est.ci_low, est.ci_high) == pytest.approx(wilson_interval(8, 10))
    perfect = mean_estimate([1.0] * 5)  # the normal interval would collapse to [1, 1]
    assert perfect.ci_high == 1.0 and perfect.ci_low < 0.7


def test_single_fractional_question_has_no_interval_and_a_note():
    est = mean_estimate([0.25])
    assert math.isnan(est.se) and math.isnan(est.ci_low)
    assert "no interval" in str(est)
    assert "wide" in est.note


def test_small_sample_note_threshold():
    assert "30 questions" in small_sample_note(30)
    assert small_sample_note(SMALL_N) == ""


def test_bootstrap_is_deterministic_and_close_to_normal_se():
    vals = [((i * 37) % 11) / 10 for i in range(200)]
    b1, b2 = bootstrap_estimate(vals, seed=3), bootstrap_estimate(vals, seed=3)
    assert b1 == b2
    normal = mean_estimate(vals)
    assert b1.value == pytest.approx(normal.value)
    assert b1.se == pytest.approx(normal.se, rel=0.1)
    assert b1.ci_low < b1.value < b1.ci_high
    const = bootstrap_estimate([0.5] * 20)
    assert const.se == 0.0 and const.ci_low == const.ci_high == 0.5


def test_as_dict_keys():
    d = mean_estimate([1, 0]).as_dict("cons@4")
    assert set(d) == {"cons@4", "cons@4_se", "cons@4_ci_low", "cons@4_ci_high"}


# ---------------------------------------------------------------------------- majority voting


def _string_equal(a, b):
    return a == b


def test_equivalent_answers_written_differently_are_pooled():
    answers = ["1/2", "3", "0.5", "3", "\\frac{1}{2}"]
    vote = majority_vote(answers, grade)
    assert vote.answer == "1/2" and vote.count == 3 and not vote.tie
    assert [c.members for c in vote.clusters] == [(0, 2, 4), (1, 3)]
    # Without the verifier the three spellings split and "3" would win: pooling changes the result.
    assert majority_vote(answers, _string_equal).answer == "3"


def test_tie_goes_to_the_earliest_cluster_and_is_reported():
    vote = majority_vote(["7", "5", "5", "7"], _string_equal)
    assert vote.answer == "7" and vote.index == 0 and vote.tie and vote.tied == ("7", "5")
    vote = majority_vote(["5", "7", "7", "5"], _string_equal)
    assert vote.answer == "5" and vote.tied == ("5", "7")
    # A tie formed through pooling: {0.5, 1/2} vs {2, 2}; the 0.5 cluster appeared first.
    vote = majority_vote(["0.5", "2", "1/2", "2"], grade)
    assert vote.tie and vote.answer == "0.5" and vote.count == 2


def test_unextracted_answers_never_win():
    vote = majority_vote([None, "", None, "4"], _string_equal)
    assert vote.answer == "4" and vote.count == 1 and vote.k == 4 and not vote.tie
    empty = majority_vote([None, None], _string_equal)
    assert empty.answer is None and empty.index is None and empty.count == 0


def test_identical_strings_skip_the_verifier():
    calls = []

    def equiv(a, b):
        calls.append((a, b))
        return False

    clusters = cluster_answers(["4", " 4", "4", "5"], equiv)
    assert [c.count for c in clusters] == [3, 1]
    assert calls == [("4", "5")]


def test_maj_at_k_grades_the_winner_and_uses_the_first_k():
    answers = [["7", "5", "5", "7"], ["1/2", "0.5", "2", "\\frac{1}{2}"], [None, None, None, None]]
    correct = [[False, True, True, False], [True, True, False, True], [False] * 4]
    est, votes = maj_at_k(answers, correct, 4, grade)
    assert [v.answer for v in votes] == ["7", "1/2", None]
    assert est.value == pytest.approx(1 / 3) and est.method == "wilson"
    est3, votes3 = maj_at_k(answers, correct, 3, grade)  # first 3: "7", "5", "5" -> 5 wins
    assert votes3[0].answer == "5" and not votes3[0].tie
    assert est3.value == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k=5"):
        maj_at_k(answers, correct, 5, grade)
