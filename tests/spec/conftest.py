"""keel.spec tests write compiled automata to a private cache folder, not to ~/.cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _spec_cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEEL_CACHE_DIR", str(tmp_path_factory.mktemp("keel-cache")))
        yield
