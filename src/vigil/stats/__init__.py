"""Experiment statistics: pure functions over per-variant sufficient statistics.

Nothing here does I/O. Serving keeps :class:`ProportionStats` / :class:`MeanStats`
counters per variant; everything below turns them into answers.

- fixed horizon: :func:`two_proportion_ztest`, :func:`welch_ttest` and intervals
  (Wilson, Newcombe, Katz log, Student t, Welch–Satterthwaite, delta method);
- Bayesian: :func:`beta_binomial_comparison`, :func:`gaussian_comparison`,
  :func:`prob_best_beta`, :func:`prob_best_normal`;
- sequential, always valid: :class:`SequentialTest`, :func:`msprt_p_value`;
- planning: :func:`sample_size_two_proportions`, :func:`sample_size_two_means`;
- health: :func:`sample_ratio_mismatch`; several arms: :func:`adjust_p_values`;
- all of it at once: :func:`summarize_experiment`;
- two models on the same rows (a validation gate): :func:`mcnemar_test`,
  :func:`paired_bootstrap_ci`, :func:`paired_mean_difference_ci`;
- what another routing policy would have earned, from a bandit's log:
  :func:`ips_estimate`, :func:`snips_estimate`, :func:`doubly_robust_estimate`.
"""

from __future__ import annotations

from vigil.stats.bayes_binomial import (
    BayesComparison,
    beta_binomial_comparison,
    expected_loss_beta,
    prob_best_beta,
    prob_beta_greater,
    prob_beta_greater_mc,
)
from vigil.stats.bayes_gaussian import gaussian_comparison, prob_best_normal
from vigil.stats.experiment import (
    ExperimentSummary,
    Recommendation,
    VariantSummary,
    summarize_experiment,
)
from vigil.stats.means import (
    mean_ci_t,
    mean_difference_ci_welch,
    relative_lift_ci_delta,
    welch_ttest,
    welch_ttest_samples,
)
from vigil.stats.multiple_testing import MultipleTestingResult, adjust_p_values
from vigil.stats.off_policy import (
    OffPolicyEstimate,
    doubly_robust_estimate,
    ips_estimate,
    snips_estimate,
)
from vigil.stats.paired import mcnemar_test, paired_bootstrap_ci, paired_mean_difference_ci
from vigil.stats.power import (
    SampleSize,
    cohens_h,
    power_two_means,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
)
from vigil.stats.proportions import (
    difference_ci_newcombe,
    rate_ci_wilson,
    relative_lift_ci_katz,
    two_proportion_ztest,
)
from vigil.stats.results import Estimate, TestResult
from vigil.stats.sequential import (
    DEFAULT_TAU,
    SequentialTest,
    always_valid_p_values,
    msprt_log_likelihood_ratio,
    msprt_p_value,
)
from vigil.stats.srm import SRMResult, sample_ratio_mismatch
from vigil.stats.sufficient import MeanStats, ProportionStats

__all__ = [
    "DEFAULT_TAU",
    "BayesComparison",
    "Estimate",
    "ExperimentSummary",
    "MeanStats",
    "MultipleTestingResult",
    "OffPolicyEstimate",
    "ProportionStats",
    "Recommendation",
    "SRMResult",
    "SampleSize",
    "SequentialTest",
    "TestResult",
    "VariantSummary",
    "adjust_p_values",
    "always_valid_p_values",
    "beta_binomial_comparison",
    "cohens_h",
    "difference_ci_newcombe",
    "doubly_robust_estimate",
    "expected_loss_beta",
    "gaussian_comparison",
    "ips_estimate",
    "mcnemar_test",
    "mean_ci_t",
    "mean_difference_ci_welch",
    "msprt_log_likelihood_ratio",
    "msprt_p_value",
    "paired_bootstrap_ci",
    "paired_mean_difference_ci",
    "power_two_means",
    "power_two_proportions",
    "prob_best_beta",
    "prob_best_normal",
    "prob_beta_greater",
    "prob_beta_greater_mc",
    "rate_ci_wilson",
    "relative_lift_ci_delta",
    "relative_lift_ci_katz",
    "sample_ratio_mismatch",
    "sample_size_two_means",
    "sample_size_two_proportions",
    "snips_estimate",
    "summarize_experiment",
    "two_proportion_ztest",
    "welch_ttest",
    "welch_ttest_samples",
]
