"""Uniform meta-solver: every population member equally (PSRO-uniform is fictitious play,
Heinrich, Lanctot & Silver 2015, "Fictitious Self-Play in Extensive-Form Games")."""

import numpy as np


def meta_solver(M, iteration):
    return [np.full(k, 1.0 / k) for k in M.shape[:-1]]
