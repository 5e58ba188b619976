"""Metric functions of sim2real.evaluation.metrics against hand-computed values."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from sim2real.errors import UsageError
from sim2real.evaluation.document import MetricsDocument, closed_loop_entry, metrics_problems, new_metrics
from sim2real.evaluation.metrics import (
    RankingInputError,
    SuccessRate,
    action_errors,
    action_scale,
    aggregate_trajectory_errors,
    bootstrap_interval,
    categorical_breakdown,
    factor_breakdown,
    frechet_distance,
    frechet_distance_from_features,
    mmrv,
    open_loop_gap,
    pearson_r,
    ranking_agreement,
    token_accuracy,
    trajectory_errors,
    wilson_interval,
)
from sim2real.evaluation.report import write_report

# --------------------------------------------------------------------------------------------
# Wilson interval
# --------------------------------------------------------------------------------------------
# z = 1.959964 (95%), z² = 3.841459. With n = 10: z²/n = 0.3841459, so the denominator
# 1 + z²/n = 1.3841459 and z²/(2n) = 0.1920729, z²/(4n²) = 0.0096036.
#
# 8/10, p = 0.8:
#   centre = (0.8 + 0.1920729) / 1.3841459             = 0.9920729 / 1.3841459 = 0.7167402
#   half   = 1.959964 / 1.3841459 * sqrt(0.8*0.2/10 + 0.0096036)
#          = 1.4160030 * sqrt(0.0256036) = 1.4160030 * 0.1600114 = 0.2265777
#   (low, high) = (0.7167402 - 0.2265777, 0.7167402 + 0.2265777) = (0.4901625, 0.9433178)
# 0/10, p = 0:
#   centre = 0.1920729 / 1.3841459 = 0.1387664
#   half   = 1.4160030 * sqrt(0.0096036) = 1.4160030 * 0.0979982 = 0.1387664
#   (low, high) = (0, 0.2775328)
# 10/10 mirrors 0/10: (1 - 0.2775328, 1) = (0.7224672, 1)


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [(8, 10, (0.4901625, 0.9433178)), (0, 10, (0.0, 0.2775328)), (10, 10, (0.7224672, 1.0))],
)
def test_wilson_interval_hand_values(successes, trials, expected):
    low, high = wilson_interval(successes, trials)
    assert low == pytest.approx(expected[0], abs=1e-6)
    assert high == pytest.approx(expected[1], abs=1e-6)


def test_wilson_interval_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # A wider confidence gives a wider interval around the same centre.
    low90, high90 = wilson_interval(8, 10, confidence=0.90)
    low95, high95 = wilson_interval(8, 10)
    assert low95 < low90 < 0.8 < high90 < high95
    for bad in [(11, 10), (-1, 10), (1, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


def test_success_rate():
    rate = SuccessRate.from_outcomes([True, False, True, True, True, True, True, False, True, True])
    assert (rate.successes, rate.trials, rate.rate) == (8, 10, 0.8)
    assert (rate.low, rate.high) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)
    assert rate.to_dict() == {"successes": 8, "trials": 10, "rate": 0.8, "ci95": [rate.low, rate.high]}
    empty = SuccessRate.from_counts(0, 0)
    assert (empty.rate, empty.low, empty.high) == (0.0, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Ranking agreement on SimplerEnv's published Google Robot "pick coke can" rates
# --------------------------------------------------------------------------------------------
# Policies: RT-2-X, RT-1 (Converged), RT-1 (15%), RT-1-X, RT-1 (Begin), Octo-Base.
COKE_SIM = [0.787, 0.857, 0.710, 0.567, 0.027, 0.170]  # SIMPLER visual matching
COKE_REAL = [0.907, 0.853, 0.920, 0.760, 0.133, 0.293]  # real robot


def test_pearson_on_published_table():
    # mean(sim) = 3.118 / 6 = 0.519667; mean(real) = 3.866 / 6 = 0.644333
    # deviations sim:  0.267333  0.337333  0.190333  0.047333 -0.492667 -0.349667
    # deviations real: 0.262667  0.208667  0.275667  0.115667 -0.511333 -0.351333
    # products: 0.070220 + 0.070390 + 0.052469 + 0.005475 + 0.251917 + 0.122850 = 0.573320
    # sum sq sim:  0.071467 + 0.113794 + 0.036227 + 0.002240 + 0.242720 + 0.122267 = 0.588715
    # sum sq real: 0.068994 + 0.043542 + 0.075992 + 0.013379 + 0.261462 + 0.123435 = 0.586803
    # r = 0.573320 / sqrt(0.588715 * 0.586803) = 0.573320 / sqrt(0.345460) = 0.573320 / 0.587759 = 0.975434
    assert pearson_r(COKE_SIM, COKE_REAL) == pytest.approx(0.975434, abs=1e-5)
    assert pearson_r(COKE_REAL, COKE_SIM) == pytest.approx(pearson_r(COKE_SIM, COKE_REAL))


def test_pearson_small_table_and_degenerate():
    # x = 1, 2, 3; y = 2, 4, 5. Deviations: x -1, 0, 1; y -5/3, 1/3, 4/3.
    # products: 5/3 + 0 + 4/3 = 3; sum sq x = 2; sum sq y = 25/9 + 1/9 + 16/9 = 42/9
    # r = 3 / sqrt(2 * 42/9) = 3 / sqrt(9.3333) = 3 / 3.0550505 = 0.9819805
    assert pearson_r([1, 2, 3], [2, 4, 5]) == pytest.approx(0.9819805, abs=1e-7)
    assert pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson_r([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))  # constant sim: undefined
    assert math.isnan(pearson_r([0.5], [0.1]))


def test_mmrv_on_published_table():
    # Order by sim:  RT-1 Conv (0.857) > RT-2-X (0.787) > RT-1 15% (0.710) > RT-1-X > Octo > Begin
    # Order by real: RT-1 15% (0.920) > RT-2-X (0.907) > RT-1 Conv (0.853) > RT-1-X > Octo > Begin
    # Mis-ordered pairs and their real gaps |r_i - r_j|:
    #   (RT-1 Conv, RT-2-X):   |0.853 - 0.907| = 0.054
    #   (RT-1 Conv, RT-1 15%): |0.853 - 0.920| = 0.067
    #   (RT-2-X, RT-1 15%):    |0.907 - 0.920| = 0.013
    # Max violation per policy: RT-2-X 0.054, RT-1 Conv 0.067, RT-1 15% 0.067, RT-1-X 0,
    # RT-1 Begin 0, Octo 0.  MMRV = (0.054 + 0.067 + 0.067) / 6 = 0.188 / 6 = 0.031333
    assert mmrv(COKE_SIM, COKE_REAL) == pytest.approx(0.188 / 6, abs=1e-9)


def test_mmrv_constructed_tables():
    assert mmrv([0.1, 0.5, 0.9], [0.2, 0.3, 0.4]) == 0.0  # same order
    # Full reversal: sim 0.1 < 0.2 < 0.3, real 0.9 > 0.5 > 0.1 — every pair is mis-ordered.
    # policy 0: max(|0.9-0.5|, |0.9-0.1|) = 0.8; policy 1: max(0.4, 0.4) = 0.4; policy 2: 0.8
    # MMRV = (0.8 + 0.4 + 0.8) / 3 = 0.666667
    assert mmrv([0.1, 0.2, 0.3], [0.9, 0.5, 0.1]) == pytest.approx(2.0 / 3.0)
    # A tie in sim, with the definition's strict "<":
    # sim = 0.5, 0.5, 0.2; real = 0.8, 0.4, 0.6
    #   (i=0, j=1): s0<s1 F, r0<r1 F -> 0      (i=1, j=0): s1<s0 F, r1<r0 T -> |0.4-0.8| = 0.4
    #   (i=0, j=2): F, F -> 0                  (i=2, j=0): T, T -> 0
    #   (i=1, j=2): s1<s2 F, r1<r2 T -> 0.2    (i=2, j=1): s2<s1 T, r2<r1 F -> 0.2
    # max per policy: 0, 0.4, 0.2 -> MMRV = 0.6 / 3 = 0.2
    assert mmrv([0.5, 0.5, 0.2], [0.8, 0.4, 0.6]) == pytest.approx(0.2)
    assert mmrv([0.3], [0.7]) == 0.0
    with pytest.raises(ValueError):
        mmrv([0.1, 0.2], [0.1])


def test_mmrv_matches_simplerenv_script_without_ties():
    # SimplerEnv's script compares with ">" where the paper writes "<"; without ties the two agree.
    rng = np.random.default_rng(5)
    for _ in range(20):
        sim, real = rng.permutation(np.linspace(0.05, 0.95, 7)), rng.permutation(np.linspace(0.1, 0.9, 7))
        script = np.mean(
            [
                max([abs(real[i] - real[j]) for j in range(7) if (sim[i] > sim[j]) != (real[i] > real[j])] or [0.0])
                for i in range(7)
            ]
        )
        assert mmrv(sim, real) == pytest.approx(script, abs=1e-12)


def test_bootstrap_interval_contains_estimate_and_is_deterministic():
    for metric in (pearson_r, mmrv):
        estimate = metric(COKE_SIM, COKE_REAL)
        first = bootstrap_interval(metric, COKE_SIM, COKE_REAL, n=500, seed=3)
        again = bootstrap_interval(metric, COKE_SIM, COKE_REAL, n=500, seed=3)
        assert first == again
        assert first.interval is not None and first.reason is None
        assert first.interval[0] <= estimate <= first.interval[1]
        other = bootstrap_interval(metric, COKE_SIM, COKE_REAL, n=500, seed=4)
        assert other.interval != first.interval
    # A Generator can be passed instead of a seed; default_rng(3) gives the same stream as seed=3.
    expected = bootstrap_interval(pearson_r, COKE_SIM, COKE_REAL, n=500, seed=3)
    rng = np.random.default_rng(3)
    assert bootstrap_interval(pearson_r, COKE_SIM, COKE_REAL, n=500, seed=rng) == expected


def test_bootstrap_skips_degenerate_resamples():
    # With 3 policies, 3 of the 27 index draws are constant (i, i, i); Pearson is NaN there.
    result = bootstrap_interval(pearson_r, [0.1, 0.5, 0.9], [0.2, 0.6, 0.7], n=300, seed=0)
    assert result.interval is not None
    low, high = result.interval
    assert math.isfinite(low) and math.isfinite(high) and -1.0 <= low <= high <= 1.0
    draws = np.random.default_rng(0).integers(0, 3, size=(300, 3))
    assert result.skipped == sum(len(set(d)) == 1 for d in draws) > 0
    # A constant sim vector makes every resample undefined: no interval, and a reason.
    flat = bootstrap_interval(pearson_r, [0.5] * 4, [0.1, 0.2, 0.3, 0.4], n=50, skip_degenerate=True)
    assert (flat.interval, flat.skipped, flat.as_list()) == (None, 50, None)
    assert flat.reason == (
        "only 0 of 50 bootstrap resamples have two or more distinct sim and real values; an interval needs at least 40"
    )


# A table on which centring by the mean turns degenerate resamples into ±1: for each policy i the
# constant vectors (s_i, s_i, s_i) and (r_i, r_i, r_i) have a mean that differs from s_i, r_i in
# the last bit, so the deviations are tiny but nonzero.
DEGENERATE_SIM = [0.05, 0.1, 0.2]
DEGENERATE_REAL = [0.1, 0.2, 0.4]


def test_pearson_constant_vectors_are_undefined():
    # A constant real vector whose mean rounds away from its value (centring alone gives 4.5e-16).
    assert math.isnan(pearson_r([0.1, 0.2, 0.3], [0.05, 0.05, 0.05]))
    assert math.isnan(pearson_r([0.05, 0.05, 0.05], [0.1, 0.2, 0.3]))
    # Two constant vectors (centring alone gives +1 or -1).
    assert math.isnan(pearson_r([0.05] * 3, [0.1] * 3))
    assert math.isnan(pearson_r([0.2] * 3, [0.35] * 3))
    for s, r in zip(DEGENERATE_SIM, DEGENERATE_REAL, strict=True):
        assert math.isnan(pearson_r([s] * 3, [r] * 3))
    # Two distinct values are enough for a defined r (exactly ±1 with two distinct points).
    assert pearson_r([0.05, 0.05, 0.1], [0.1, 0.1, 0.2]) == pytest.approx(1.0)


def test_bootstrap_never_returns_one_from_a_degenerate_resample():
    values: list[float] = []
    constant_inputs: list[bool] = []

    def recording_pearson(sim: np.ndarray, real: np.ndarray) -> float:
        value = pearson_r(sim, real)
        values.append(value)
        constant_inputs.append(len(set(sim.tolist())) < 2 or len(set(real.tolist())) < 2)
        return value

    result = bootstrap_interval(recording_pearson, DEGENERATE_SIM, DEGENERATE_REAL, n=2000, seed=0)
    draws = np.random.default_rng(0).integers(0, 3, size=(2000, 3))
    one_policy = sum(len(set(d)) == 1 for d in draws)
    assert one_policy == 215  # 215 of the 2,000 resamples draw a single policy
    values, constant_inputs = values[1:], constant_inputs[1:]  # the first call is the full sample
    assert len(values) == 2000
    assert all(math.isnan(v) for v, flat in zip(values, constant_inputs, strict=True) if flat)
    assert sum(constant_inputs) == one_policy  # the draws with two or three policies vary in both worlds
    assert result.skipped == one_policy and result.used == 2000 - one_policy
    # With skip_degenerate the metric is not even evaluated on them, and the count is the same.
    skipping = bootstrap_interval(pearson_r, DEGENERATE_SIM, DEGENERATE_REAL, n=2000, seed=0, skip_degenerate=True)
    assert skipping == result

    block = ranking_agreement(DEGENERATE_SIM, DEGENERATE_REAL, n_bootstrap=2000, seed=0)
    pearson_rng = np.random.default_rng(np.random.SeedSequence(0).spawn(2)[0])
    spawned = pearson_rng.integers(0, 3, size=(2000, 3))
    assert block["bootstrap"]["pearson_skipped"] == sum(len(set(d)) == 1 for d in spawned) > 0
    assert block["bootstrap"]["mmrv_skipped"] == 0
    assert block["pearson"] == pytest.approx(1.0) and block["pearson_ci95"] == pytest.approx([1.0, 1.0])


def test_ranking_agreement_block():
    block = ranking_agreement(COKE_SIM, COKE_REAL, n_bootstrap=300, seed=0)
    assert set(block) == {
        "pearson",
        "pearson_reason",
        "pearson_ci95",
        "pearson_ci95_reason",
        "mmrv",
        "mmrv_ci95",
        "mmrv_ci95_reason",
        "bootstrap",
    }
    assert block["pearson"] == pytest.approx(0.975434, abs=1e-5)
    assert block["mmrv"] == pytest.approx(0.188 / 6)
    assert block["pearson_ci95"][0] <= block["pearson"] <= block["pearson_ci95"][1]
    assert block["pearson_reason"] is None and block["pearson_ci95_reason"] is None
    assert block["mmrv_ci95_reason"] is None
    assert block["bootstrap"]["resamples"] == 300 and block["bootstrap"]["seed"] == 0
    assert block == ranking_agreement(COKE_SIM, COKE_REAL, n_bootstrap=300, seed=0)


def test_ranking_agreement_constant_real_rates_give_null_with_reason(tmp_path):
    block = ranking_agreement([0.1, 0.2, 0.3], [0.05, 0.05, 0.05], n_bootstrap=2000, seed=0)
    assert block["pearson"] is None
    assert block["pearson_reason"] == "real success rates are all equal: correlation undefined"
    assert block["pearson_ci95"] is None
    assert block["pearson_ci95_reason"].startswith("real success rates are all equal: correlation undefined; ")
    assert block["bootstrap"]["pearson_skipped"] == 2000
    assert block["mmrv"] == pytest.approx(0.0)  # ties in real: no pair can be mis-ordered by sim
    both = ranking_agreement([0.05] * 3, [0.1] * 3, n_bootstrap=100)
    assert both["pearson"] is None
    assert both["pearson_reason"] == "sim and real success rates are each all equal: correlation undefined"
    one = ranking_agreement([0.4], [0.7], n_bootstrap=100)
    assert one["pearson_reason"] == "fewer than two policies: correlation undefined"

    metrics = new_metrics("p", None, base_seed=0, episodes_per_variant=1)
    metrics["closed_loop"] = {"in_distribution": {"t": closed_loop_entry([True, False])}}
    metrics["ranking"] = block
    written = write_report(metrics, tmp_path)
    loaded = json.loads(written["metrics_json"].read_text())
    MetricsDocument.from_dict(loaded)
    assert loaded["ranking"]["pearson"] is None
    assert loaded["ranking"]["pearson_reason"] == "real success rates are all equal: correlation undefined"
    assert loaded["ranking"]["pearson_ci95"] is None and loaded["ranking"]["pearson_ci95_reason"]
    assert loaded["ranking"]["bootstrap"]["pearson_skipped"] == 2000
    assert "real success rates are all equal: correlation undefined" in written["report_md"].read_text()


def test_ranking_schema_checks_reasons_and_skipped_counts(tmp_path):
    metrics = new_metrics("p", None, base_seed=0, episodes_per_variant=1)
    metrics["ranking"] = {
        "pearson": 0.5,
        "pearson_reason": "real success rates are all equal: correlation undefined",
        "pearson_ci95": None,
        "pearson_ci95_reason": 3,
        "mmrv": 0.1,
        "mmrv_ci95": None,
        "bootstrap": {"resamples": 100, "pearson_skipped": 101, "mmrv_skipped": -1},
    }
    problems = "\n".join(metrics_problems(metrics))
    for needle in (
        "ranking.pearson_reason: given, but ranking.pearson is not null",
        "ranking.pearson_ci95_reason: expected a non-empty string or null, got 3",
        "ranking.bootstrap.pearson_skipped: expected an int in [0, resamples], got 101",
        "ranking.bootstrap.mmrv_skipped: expected an int in [0, resamples], got -1",
    ):
        assert needle in problems, needle
    # A null value written without a reason gets one in metrics.json.
    metrics["ranking"] = {"pearson": float("nan"), "pearson_ci95": None, "mmrv": 0.1, "mmrv_ci95": [0.0, 0.2]}
    loaded = json.loads(write_report(metrics, tmp_path)["metrics_json"].read_text())
    assert loaded["ranking"]["pearson"] is None and loaded["ranking"]["pearson_reason"]
    assert loaded["ranking"]["pearson_ci95_reason"] and "mmrv_ci95_reason" not in loaded["ranking"]


def test_nan_sim_rate_is_an_error_naming_the_policy():
    names = ["rt-1", "octo", "openvla"]
    with pytest.raises(
        RankingInputError, match=r"^sim success rate of policy 'octo' is nan; expected a finite number in \[0, 1\]$"
    ):
        ranking_agreement([0.5, math.nan, 0.2], [0.6, 0.3, 0.1], policies=names)
    with pytest.raises(
        RankingInputError, match=r"^sim success rate of policy 'octo' is nan; expected a finite number$"
    ):
        pearson_r([0.5, math.nan, 0.2], [0.6, 0.3, 0.1], names=names)
    with pytest.raises(
        RankingInputError, match=r"^real success rate of the policy at index 2 is inf; expected a finite"
    ):
        mmrv([0.5, 0.4, 0.2], [0.6, 0.3, math.inf])
    with pytest.raises(RankingInputError, match=r"^sim success rate of the policy at index 1 is nan;"):
        bootstrap_interval(mmrv, [0.5, math.nan, 0.2], [0.6, 0.3, 0.1], n=10)
    # The error is a usage error (one clean line, exit 2) and still a ValueError.
    assert issubclass(RankingInputError, UsageError) and issubclass(RankingInputError, ValueError)


def test_rate_outside_unit_interval_is_an_error_naming_the_policy():
    names = ["rt-1", "octo", "openvla"]
    with pytest.raises(
        RankingInputError, match=r"^real success rate of policy 'rt-1' is 1\.2; expected a fraction in \[0, 1\]"
    ):
        ranking_agreement([0.5, 0.4, 0.2], [1.2, 0.3, 0.1], policies=names)
    with pytest.raises(
        RankingInputError, match=r"^sim success rate of policy 'openvla' is -0\.1; expected a fraction in \[0, 1\]$"
    ):
        mmrv([0.5, 0.4, -0.1], [0.6, 0.3, 0.1], names=names)
    with pytest.raises(
        RankingInputError, match=r"^real success rate of the policy at index 0 is 85; expected a fraction"
    ):
        mmrv([0.5, 0.4, 0.2], [85, 0.3, 0.1])
    # Inside a bootstrap the full sample is checked first, so the index is the policy's own.
    with pytest.raises(RankingInputError, match=r"^real success rate of the policy at index 2 is 1\.5;"):
        bootstrap_interval(mmrv, [0.5, 0.4, 0.2], [0.6, 0.3, 1.5], n=10)
    with pytest.raises(RankingInputError, match=r"^2 policy names for 3 policies$"):
        ranking_agreement([0.5, 0.4, 0.2], [0.6, 0.3, 0.1], policies=names[:2])


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------


def test_frechet_one_dimensional():
    # mu1 = 1, s1 = 2 (variance 4); mu2 = 3, s2 = 1 (variance 1):
    # (1 - 3)² + 2² + 1² - 2*2*1 = 4 + 4 + 1 - 4 = 5
    assert frechet_distance(1.0, 4.0, 3.0, 1.0) == pytest.approx(5.0)
    assert frechet_distance(0.0, 2.0, 0.0, 2.0) == pytest.approx(0.0, abs=1e-12)


def test_frechet_diagonal_multivariate():
    # Diagonal covariances: the trace term splits per dimension into (s1_k - s2_k)².
    # |mu1 - mu2|² = 1 + 4 + 4 = 9
    # std1 = (1, 2, 3), std2 = (2, 2, 1): (1-2)² + (2-2)² + (3-1)² = 1 + 0 + 4 = 5
    # total = 14
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    sigma1, sigma2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(14.0)


def test_frechet_singular_covariances():
    # Zero covariances: only the means differ, |(0, 0) - (1, 1)|² = 2.
    assert frechet_distance([0, 0], np.zeros((2, 2)), [1, 1], np.zeros((2, 2))) == pytest.approx(2.0, abs=1e-5)
    # More dimensions than samples: rank-deficient covariances still give a finite distance.
    rng = np.random.default_rng(0)
    value = frechet_distance_from_features(rng.normal(size=(5, 16)), rng.normal(size=(6, 16)))
    assert math.isfinite(value) and value > 0


def test_frechet_from_samples_approximates_analytic():
    rng = np.random.default_rng(7)
    a = rng.normal(loc=[0.0, 0.0, 0.0], scale=[1.0, 2.0, 3.0], size=(40_000, 3))
    b = rng.normal(loc=[1.0, 2.0, 2.0], scale=[2.0, 2.0, 1.0], size=(40_000, 3))
    assert frechet_distance_from_features(a, b) == pytest.approx(14.0, rel=0.02)
    same = frechet_distance_from_features(a[:20_000], a[20_000:])
    assert 0.0 <= same < 0.01


# --------------------------------------------------------------------------------------------
# Open-loop action errors
# --------------------------------------------------------------------------------------------


def test_action_errors_hand_case():
    true = np.array(
        [
            [0.00, 0.00, 0.00, 0.0, 0.0, 0.0, 1.0],
            [0.01, 0.00, -0.01, 0.1, 0.0, 0.0, 0.0],
        ]
    )
    pred = np.array(
        [
            [0.01, 0.00, 0.00, 0.0, 0.0, 0.2, 0.7],  # gripper 0.7 -> open, matches 1.0
            [0.01, 0.02, -0.01, 0.0, 0.0, 0.0, 0.6],  # gripper 0.6 -> open, true 0.0 closed
        ]
    )
    scale = np.array([0.02, 0.02, 0.02, 0.2, 0.2, 0.2, 1.0])
    errors = action_errors(pred, true, scale, pred_tokens=[[1, 2], [3, 4]], true_tokens=[[1, 2], [3, 5]])
    # |diff| / scale averaged over the 2 steps, per dimension:
    # dx: (0.01/0.02 + 0)/2 = 0.25; dy: (0 + 0.02/0.02)/2 = 0.5; dz: 0; droll: (0 + 0.1/0.2)/2 = 0.25
    # dpitch: 0; dyaw: (0.2/0.2 + 0)/2 = 0.5; gripper: (0.3 + 0.6)/2 = 0.45
    assert errors.normalized_l1 == pytest.approx([0.25, 0.5, 0.0, 0.25, 0.0, 0.5, 0.45])
    # squares: dx (0.25 + 0)/2 = 0.125; dy 0.5; droll 0.125; dyaw 0.5; gripper (0.09 + 0.36)/2 = 0.225
    assert errors.normalized_mse == pytest.approx([0.125, 0.5, 0.0, 0.125, 0.0, 0.5, 0.225])
    assert errors.mse[0] == pytest.approx(0.01**2 / 2)
    assert errors.gripper_accuracy == 0.5
    assert errors.token_accuracy == 0.75
    assert errors.names[-1] == "gripper"
    assert errors.n_steps == 2
    as_dict = errors.to_dict()
    assert as_dict["mean_normalized_l1"] == pytest.approx((0.25 + 0.5 + 0.25 + 0.5 + 0.45) / 7)


def test_action_scale_and_token_accuracy():
    actions = np.stack([np.linspace(0.0, 1.0, 101), np.full(101, 3.0)], axis=1)
    # p99 - p01 of 0, 0.01, ..., 1 is 0.99 - 0.01 = 0.98; a constant column gets the floor.
    assert action_scale(actions) == pytest.approx([0.98, 1e-6])
    assert token_accuracy([[1, 2, 3], [4, 5, 6]], [[1, 2, 0], [4, 0, 6]]) == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        token_accuracy([1, 2], [1, 2, 3])


def test_open_loop_gap():
    real = {"names": ["a", "b"], "normalized_l1": [0.1, 0.2], "gripper_accuracy": 0.9, "token_accuracy": None}
    sim = {"names": ["a", "b"], "normalized_l1": [0.15, 0.1], "gripper_accuracy": 0.8, "token_accuracy": 0.5}
    gap = open_loop_gap(real, sim)
    assert gap["normalized_l1"] == pytest.approx([0.05, -0.1])
    assert gap["gripper_accuracy"] == pytest.approx(-0.1)
    assert gap["token_accuracy"] is None
    assert gap["names"] == ["a", "b"]


# --------------------------------------------------------------------------------------------
# Dynamics replay
# --------------------------------------------------------------------------------------------


def test_trajectory_errors_known_rotation():
    steps = 4
    true_pos = np.zeros((steps, 3))
    pred_pos = np.tile([0.03, 0.04, 0.0], (steps, 1))  # 3-4-5 triangle: 0.05 m
    pred_pos[-1] = [0.0, 0.0, 0.12]
    true_rpy = np.tile([0.1, -0.2, 0.3], (steps, 1))
    pred_rpy = true_rpy.copy()
    pred_rpy[1, 2] += 0.25  # 0.25 rad more yaw
    # Step 2: roll a = 0.3 against yaw b = 0.4. trace(Rx(a)ᵀ Rz(b)) = cos b + cos a cos b + cos a,
    # trace = 0.921061 + 0.879923 + 0.955336 = 2.756320, angle = arccos((2.756320 - 1) / 2)
    #       = arccos(0.878160) = 0.498794 rad
    pred_rpy[2] = [0.3, 0.0, 0.0]
    true_rpy[2] = [0.0, 0.0, 0.4]
    errors = trajectory_errors(pred_pos, pred_rpy, true_pos, true_rpy)
    assert errors.position_error == pytest.approx([0.05, 0.05, 0.05, 0.12])
    assert errors.orientation_error == pytest.approx([0.0, 0.25, 0.498794, 0.0], abs=1e-6)
    assert errors.final_position_error == pytest.approx(0.12)
    assert errors.mean_position_error == pytest.approx(0.27 / 4)
    assert errors.mean_orientation_error == pytest.approx((0.25 + 0.498794) / 4, abs=1e-6)
    assert errors.final_orientation_error == pytest.approx(0.0, abs=1e-9)
    summary = aggregate_trajectory_errors([errors, errors])
    assert summary["n_episodes"] == 2
    assert summary["final_position_error_m"] == pytest.approx(0.12)
    with pytest.raises(ValueError):
        trajectory_errors(pred_pos[:, :2], pred_rpy, true_pos, true_rpy)


# --------------------------------------------------------------------------------------------
# Per-factor breakdown
# --------------------------------------------------------------------------------------------


def test_factor_breakdown_quantile_bins():
    values = np.arange(10, dtype=float)  # 0 .. 9
    successes = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    # quantiles at 0, .2, .4, .6, .8, 1 of 0..9 (linear): 0, 1.8, 3.6, 5.4, 7.2, 9
    # bins: [0, 1.8) {0, 1}, [1.8, 3.6) {2, 3}, [3.6, 5.4) {4, 5}, [5.4, 7.2) {6, 7}, [7.2, 9] {8, 9}
    bins = factor_breakdown(values, successes, bins=5)
    edges = [b.low for b in bins] + [bins[-1].high]
    assert edges == pytest.approx([0.0, 1.8, 3.6, 5.4, 7.2, 9.0])
    assert all(a.high == b.low for a, b in itertools.pairwise(bins))
    assert [(b.rate.successes, b.rate.trials) for b in bins] == [(2, 2), (1, 2), (1, 2), (0, 2), (1, 2)]
    low, high, rate = bins[0]  # unpacks as (bin_low, bin_high, SuccessRate)
    assert (low, high, rate.rate) == (0.0, 1.8, 1.0)
    assert bins[0].to_dict()["ci95"] == [rate.low, rate.high]


def test_factor_breakdown_deduplicates_edges_and_drops_nan():
    values = [1, 1, 1, 1, 1, 1, 2, 3, float("nan")]
    successes = [1, 0, 1, 0, 1, 0, 1, 1, 1]
    # Without the NaN (n = 8), quantiles at 0, .25, .5, .75, 1 (position q * 7):
    # 0 -> 1; 1.75 -> 1; 3.5 -> 1; 5.25 -> 1 + 0.25 * (2 - 1) = 1.25; 7 -> 3
    # unique edges 1, 1.25, 3: bins [1, 1.25) {six 1s}, [1.25, 3] {2, 3}
    bins = factor_breakdown(values, successes, bins=4)
    assert [(b.low, b.high) for b in bins] == [(1.0, 1.25), (1.25, 3.0)]
    assert [(b.rate.successes, b.rate.trials) for b in bins] == [(3, 6), (2, 2)]
    constant = factor_breakdown([0.5, 0.5, 0.5], [1, 0, 1])
    assert len(constant) == 1 and constant[0].rate.trials == 3
    assert factor_breakdown([], []) == []


def test_categorical_breakdown():
    result = categorical_breakdown(["red", "blue", "red", "green", "red"], [1, 0, 0, 1, 1])
    assert [name for name, _ in result] == ["blue", "green", "red"]
    assert [(r.successes, r.trials) for _, r in result] == [(0, 1), (1, 1), (2, 3)]
