"""Privacy accounting for client-level DP-FedAvg with Google's `dp-accounting` (RDP accountant).

Each round is one subsampled Gaussian mechanism on the clipped client updates: sampling probability
q = sampled clients / all clients, noise multiplier z (std of the noise over the clipping norm). The
rounds compose; epsilon at `delta` after each round is what `keel fed run` reports.
"""

from __future__ import annotations


def epsilon_per_round(noise_multiplier: float, q: float, rounds: int, delta: float) -> list[float]:
    import dp_accounting

    acc = dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier))
    out = []
    for _ in range(rounds):
        acc.compose(event)
        out.append(float(acc.get_epsilon(delta)))
    return out
