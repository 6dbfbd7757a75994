"""Beyond one process: the same trainers on a Ray cluster (sync or AReaL-style async rollouts) and
federated agent RL on Flower. `scale` changes where rollouts and learners run, never what they compute.

Nothing here is imported by the in-process path; Ray and Flower are imported only inside these modules.
"""
