"""Bandit benchmark: cumulative regret of the serving policies on close Bernoulli arms.

Three arms convert at 5.0%, 5.5% and 6.0%; each policy routes 100,000 requests, over
several seeds. Policies run through the very classes serving uses (``pull_batch`` /
``update_batch``), with the state refreshed every ``--batch`` requests, as a server that
syncs shared counters every few requests would. Regret is the pseudo-regret
``Σ (0.060 − rate of the chosen arm)``. A uniform random split is the baseline.

Run: ``python -m bench.bandits`` (``--help`` for options). Draws the regret curves to a
PNG when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vigil.bandits import UCB1, BanditPolicy, EpsilonGreedy, ThompsonSampling

RATES = np.array([0.050, 0.055, 0.060])
ARMS = ("p=0.050", "p=0.055", "p=0.060")
CHECKPOINTS = (10_000, 20_000, 50_000, 100_000)

POLICIES: dict[str, Callable[[int], BanditPolicy | None]] = {
    "thompson": lambda seed: ThompsonSampling(arms=ARMS, seed=seed),
    "ucb1": lambda seed: UCB1(arms=ARMS, seed=seed),
    "epsilon-greedy(0.1)": lambda seed: EpsilonGreedy(arms=ARMS, epsilon=0.1, seed=seed),
    "uniform": lambda seed: None,
}


def simulate(policy: BanditPolicy | None, pulls: int, batch: int, seed: int) -> NDArray[np.float64]:
    """Cumulative regret after every pull for one policy and one seed."""
    env = np.random.default_rng(10_000 + seed)  # the same arm outcomes stream for every policy
    uniform = np.random.default_rng(seed)
    chosen = np.empty(pulls, dtype=np.int64)
    for start in range(0, pulls, batch):
        size = min(batch, pulls - start)
        idx = uniform.integers(0, RATES.size, size) if policy is None else policy.pull_batch(size)
        rewards = env.random(size) < RATES[idx]
        if policy is not None:
            policy.update_batch(idx, rewards)
        chosen[start : start + size] = idx
    return np.cumsum(RATES.max() - RATES[chosen])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulls", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=10, help="requests per state refresh")
    parser.add_argument("--png", type=Path, default=Path("bench/out/bandits_regret.png"))
    args = parser.parse_args(argv)

    curves: dict[str, NDArray[np.float64]] = {}
    print(f"arms {RATES.tolist()}  pulls {args.pulls:,}  seeds {args.seeds}  batch {args.batch}")
    for name, make in POLICIES.items():
        t0 = time.perf_counter()
        curves[name] = np.stack(
            [simulate(make(seed), args.pulls, args.batch, seed) for seed in range(args.seeds)]
        )
        print(f"  {name:<22} {time.perf_counter() - t0:6.1f} s")

    checkpoints = [c for c in CHECKPOINTS if c <= args.pulls]
    uniform_final = curves["uniform"][:, -1].mean()
    header = f"{'policy':<22}{'final regret':>18}{'vs uniform':>12}"
    header += "".join(f"{f'@{c // 1000}k':>9}" for c in checkpoints)
    if {50_000, 100_000} <= set(checkpoints):
        header += f"{'r100k/r50k':>12}"
    print("\ncumulative regret (mean over seeds)\n" + header)
    for name, runs in curves.items():
        final = runs[:, -1]
        row = f"{name:<22}{final.mean():>10.1f} ± {final.std(ddof=1):<5.1f}"
        row += f"{final.mean() / uniform_final:>12.2f}"
        row += "".join(f"{runs[:, c - 1].mean():>9.1f}" for c in checkpoints)
        if {50_000, 100_000} <= set(checkpoints):
            row += f"{runs[:, 99_999].mean() / runs[:, 49_999].mean():>12.2f}"
        print(row)
    plot(curves, args.png)


def plot(curves: dict[str, NDArray[np.float64]], path: Path) -> None:
    """Mean regret curves with a ±1 sd band; skipped (and said so) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, runs in curves.items():
        x = np.arange(1, runs.shape[1] + 1)
        mean, sd = runs.mean(axis=0), runs.std(axis=0, ddof=1)
        ax.plot(x, mean, label=name)
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.15)
    ax.set_xlabel("pulls")
    ax.set_ylabel("cumulative regret (conversions lost)")
    ax.set_title(f"Bernoulli arms {', '.join(f'{r:.3f}' for r in RATES)}; mean ± sd over seeds")
    ax.legend()
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"\nregret curves: {path}")


if __name__ == "__main__":
    main()
