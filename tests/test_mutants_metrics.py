"""Metric details the hand-value tests leave open: argument checks and their messages, confidence
passed through, bin edges, bootstrap bookkeeping, and the regularised Fréchet distance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim2real.evaluation.metrics import (
    FactorBin,
    RankingInputError,
    SuccessRate,
    bootstrap_interval,
    categorical_breakdown,
    factor_breakdown,
    frechet_distance,
    mmrv,
    pearson_r,
    ranking_agreement,
    wilson_interval,
)


def _wilson(successes: int, trials: int, z: float) -> tuple[float, float]:
    n, p = float(trials), successes / trials
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return centre - half, centre + half


def test_wilson_interval_checks_its_arguments_and_one_success_has_a_positive_low_end() -> None:
    for successes, trials in [(-1, 5), (6, 5), (0, -1)]:
        with pytest.raises(ValueError, match=rf"need 0 <= successes <= trials, got {successes}/{trials}"):
            wilson_interval(successes, trials)
    for confidence in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
            wilson_interval(1, 2, confidence)
    assert wilson_interval(1, 10) == pytest.approx(_wilson(1, 10, 1.959964), abs=1e-6)
    assert wilson_interval(1, 10)[0] > 0.0


def test_success_rate_passes_confidence_and_counts_truthy_outcomes() -> None:
    narrow = wilson_interval(8, 10, 0.5)
    rate = SuccessRate.from_counts(8, 10, 0.5)
    assert (rate.low, rate.high) == narrow
    from_outcomes = SuccessRate.from_outcomes([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], 0.5)
    assert (from_outcomes.successes, from_outcomes.trials) == (8, 10)
    assert (from_outcomes.low, from_outcomes.high) == narrow
    # 2 and 3 count as one success each, not as their values
    assert (SuccessRate.from_outcomes([2, 0, 3]).successes, SuccessRate.from_outcomes([2, 0, 3]).trials) == (2, 3)


def test_factor_bin_to_dict_keys() -> None:
    entry = FactorBin(0.25, 0.5, SuccessRate.from_counts(1, 2)).to_dict()
    assert list(entry) == ["low", "high", "successes", "trials", "rate", "ci95"]
    assert (entry["low"], entry["high"]) == (0.25, 0.5)


def test_factor_breakdown_arguments_defaults_and_edges() -> None:
    values = np.arange(10, dtype=float)
    ok = np.arange(10) % 2 == 0
    assert len(factor_breakdown(values, ok)) == 5  # default: 5 bins
    assert len(factor_breakdown(values.reshape(2, 5), ok.reshape(5, 2), bins=2)) == 2
    assert [(b.low, b.high, b.rate.trials) for b in factor_breakdown(values, ok, bins=1)] == [(0.0, 9.0, 10)]
    with pytest.raises(ValueError, match="bins must be >= 1, got 0"):
        factor_breakdown(values, ok, bins=0)
    with pytest.raises(ValueError, match="values and successes differ in length: 3 vs 2"):
        factor_breakdown([1.0, 2.0, 3.0], [1, 0])
    # a value on an inner edge belongs to the bin that starts there
    bins = factor_breakdown([0.0, 1.0, 2.0, 3.0, 4.0], [1, 0, 0, 0, 0], bins=4)
    assert [(b.low, b.high, b.rate.successes, b.rate.trials) for b in bins] == [
        (0.0, 1.0, 1, 1),
        (1.0, 2.0, 0, 1),
        (2.0, 3.0, 0, 1),
        (3.0, 4.0, 0, 2),
    ]
    # confidence reaches every bin, also the single bin of a constant factor
    for result in (
        factor_breakdown(values, ok, bins=2, confidence=0.5),
        factor_breakdown([0.5] * 4, [1, 0, 1, 1], confidence=0.5),
    ):
        for b in result:
            assert (b.rate.low, b.rate.high) == wilson_interval(b.rate.successes, b.rate.trials, 0.5)
    constant = factor_breakdown([0.5, 0.5], [1, 0])
    assert (constant[0].low, constant[0].high) == (0.5, 0.5)


def test_categorical_breakdown_arguments_and_confidence() -> None:
    result = categorical_breakdown(["a", "b", "a", "b"], [[2, 0], [1, 1]], confidence=0.5)
    assert [(name, r.successes, r.trials) for name, r in result] == [("a", 2, 2), ("b", 1, 2)]
    assert (result[0][1].low, result[0][1].high) == wilson_interval(2, 2, 0.5)
    with pytest.raises(ValueError, match="labels and successes differ in length: 3 vs 2"):
        categorical_breakdown(["a", "b", "c"], [1, 0])


def test_ranking_inputs_accept_zero_one_and_two_policies_and_name_errors() -> None:
    assert mmrv([0.0, 1.0], [1.0, 0.0]) == 1.0
    assert pearson_r([[0.1, 0.2], [0.3, 0.4]], [[0.2, 0.4], [0.6, 0.8]]) == pytest.approx(1.0)
    assert pearson_r([0.1, 0.2], [0.3, 0.5]) == pytest.approx(1.0)
    assert ranking_agreement([0.1, 0.2], [0.3, 0.5], n_bootstrap=50)["pearson_reason"] is None
    with pytest.raises(RankingInputError, match="paired vectors differ in length: 2 vs 3"):
        pearson_r([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(RankingInputError, match=r"^need at least one policy$"):
        pearson_r([], [])
    reason = ranking_agreement([0.5, 0.5, 0.5], [0.1, 0.2, 0.3], n_bootstrap=50)["pearson_reason"]
    assert reason == "sim success rates are all equal: correlation undefined"


def _mean_gap(s: np.ndarray, r: np.ndarray) -> float:
    return float(np.mean(s - r))


def test_bootstrap_defaults_bounds_and_quantiles() -> None:
    sim, real = [0.1, 0.1, 0.1, 0.9], [0.2, 0.3, 0.4, 0.5]
    default = bootstrap_interval(_mean_gap, sim, real)
    assert default.resamples == 2000
    assert default == bootstrap_interval(_mean_gap, sim, real, n=2000, seed=0)
    assert bootstrap_interval(_mean_gap, sim, real, n=1).resamples == 1
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        bootstrap_interval(_mean_gap, sim, real, n=0)
    with pytest.raises(RankingInputError, match="policy 'b'"):
        bootstrap_interval(_mean_gap, [0.1, math.nan], [0.1, 0.2], names=["a", "b"])
    # the interval: the 5 % and 95 % quantiles of the resampled values; the degenerate filter
    # drops exactly the resamples with a single distinct sim or real value
    s, r = np.asarray(sim), np.asarray(real)
    indices = np.random.default_rng(3).integers(0, 4, size=(400, 4))
    values = np.array([_mean_gap(s[i], r[i]) for i in indices])
    degenerate = (np.ptp(s[indices], axis=1) == 0) | (np.ptp(r[indices], axis=1) == 0)
    plain = bootstrap_interval(_mean_gap, sim, real, n=400, seed=3, confidence=0.9)
    assert plain.interval == pytest.approx(tuple(np.quantile(values, [0.05, 0.95])))
    assert plain.skipped == 0
    filtered = bootstrap_interval(_mean_gap, sim, real, n=400, seed=3, confidence=0.9, skip_degenerate=True)
    assert 0 < filtered.skipped == int(degenerate.sum()) < 400
    assert filtered.interval == pytest.approx(tuple(np.quantile(values[~degenerate], [0.05, 0.95])))
    swapped = bootstrap_interval(_mean_gap, real, sim, n=400, seed=3, confidence=0.9, skip_degenerate=True)
    assert swapped.skipped == int(degenerate.sum())
    # min_usable: exactly enough is enough; one more than drawn is not
    assert bootstrap_interval(_mean_gap, sim, real, n=10, min_usable=10).interval is not None
    assert bootstrap_interval(_mean_gap, sim, real, n=10, min_usable=0).interval is not None
    short = bootstrap_interval(_mean_gap, sim, real, n=10, min_usable=11)
    assert (short.interval, short.resamples, short.skipped) == (None, 10, 0)
    assert short.reason == "only 10 of 10 bootstrap resamples give a finite value; an interval needs at least 11"


def test_ranking_agreement_defaults_and_bootstrap_arguments() -> None:
    sim, real = [0.1, 0.4, 0.4, 0.8, 0.3], [0.2, 0.5, 0.3, 0.9, 0.3]
    block = ranking_agreement(sim, real)
    rates = np.random.default_rng(1).uniform(size=(2, 12)).round(3)
    many = ranking_agreement(rates[0], rates[1], n_bootstrap=200, seed=5)
    mmrv_rng = np.random.default_rng(np.random.SeedSequence(5).spawn(2)[1])
    assert many["mmrv_ci95"] == bootstrap_interval(mmrv, rates[0], rates[1], n=200, seed=mmrv_rng).as_list()
    assert (block["bootstrap"]["resamples"], block["bootstrap"]["seed"]) == (2000, 0)
    block = ranking_agreement(sim, real, n_bootstrap=300, seed=4, confidence=0.8)
    assert block["bootstrap"]["confidence"] == 0.8
    pearson_rng, mmrv_rng = (np.random.default_rng(c) for c in np.random.SeedSequence(4).spawn(2))
    pearson_ci = bootstrap_interval(pearson_r, sim, real, n=300, seed=pearson_rng, confidence=0.8, skip_degenerate=True)
    mmrv_ci = bootstrap_interval(mmrv, sim, real, n=300, seed=mmrv_rng, confidence=0.8)
    assert block["pearson_ci95"] == pearson_ci.as_list()
    assert block["mmrv_ci95"] == mmrv_ci.as_list()
    assert block["bootstrap"]["pearson_skipped"] == pearson_ci.skipped
    assert block["bootstrap"]["mmrv_skipped"] == mmrv_ci.skipped


def test_frechet_with_the_diagonal_offset_is_the_distance_of_the_offset_gaussians() -> None:
    # zero covariances: the root is taken of (eps I)(eps I); the distance is the mean term alone
    assert frechet_distance([0.0, 0.0], np.zeros((2, 2)), [0.0, 0.0], np.zeros((2, 2))) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance([0.0], [[0.0]], [2.0], [[0.0]]) == pytest.approx(4.0, abs=1e-12)
