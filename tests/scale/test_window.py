"""The windowed FIFO: no head-of-line blocking inside the window, no first-finished bias beyond it, a cap
on staleness; and the prefix-tree token counts."""

from __future__ import annotations

from keel.scale.prefix import token_counts, trie_size
from keel.scale.window import Job, WindowedFIFO


def _fifo(n: int, window: int = 2, cap: int = 1) -> WindowedFIFO:
    f = WindowedFIFO(window, cap)
    for i in range(n):
        f.submit(Job(i, key=i))
    return f


def test_takes_finished_job_inside_window_past_a_slow_head():
    f = _fifo(4)
    f.finish(1, version=0, result="b")  # job 0 (the head) is still sampling
    assert f.take(learner_version=0).id == 1  # no head-of-line blocking


def test_ignores_finished_jobs_outside_the_window():
    f = _fifo(4)
    f.finish(3, version=0, result="d")  # finished first, but outside the window of 2
    assert f.take(0) is None
    f.finish(0, version=0, result="a")
    assert f.take(0).id == 0


def test_staleness_cap_expires_and_counts():
    f = _fifo(2, cap=1)
    f.finish(0, version=0, result="a")
    f.finish(1, version=2, result="b")
    assert [j.id for j in f.expired(learner_version=2)] == [0]  # 2 versions old > cap 1
    assert f.dropped_stale == 1
    assert f.take(2).id == 1 and f.staleness[0] == 1


def test_prefix_counts():
    p, c = [[1, 2, 3]] * 2, [[4, 5], [4, 6]]
    got = token_counts(p, c)
    assert got == {"tokens_trained": 4, "tokens_computed_unmerged": 10, "tokens_computed_prompt_merged": 7,
                   "tokens_computed_trie": 6}
    assert trie_size([[1, 2], [1, 2]]) == 2
