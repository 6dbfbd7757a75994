"""keel.malloc: the glibc thresholds a language-model process runs with, and the same values for Ray workers.
(The effect is measured end to end in benchmarks/scale.py; a process-wide mallopt is checked in a fresh
interpreter so the test process keeps its own settings.)"""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_env_for_ray_workers_matches_the_thresholds():
    from keel.malloc import ENV, MMAP_THRESHOLD, TRIM_THRESHOLD

    assert ENV == {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    assert MMAP_THRESHOLD == 32 << 20  # glibc refuses a larger mmap threshold


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_buffers_is_accepted_by_glibc():
    code = "from keel.malloc import keep_buffers; print(keep_buffers())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]
