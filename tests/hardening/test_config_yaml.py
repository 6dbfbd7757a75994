"""Config files and --set values: alias bombs, deep nesting, tags, binary files are one-line errors."""

from __future__ import annotations

import pytest

from keel.errors import KeelError
from tests.hardening.conftest import refused

BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    + ["kind: spec_rl"]
)


def test_safe_yaml_refuses_alias_bombs_and_recursion():
    from keel.config import load_yaml

    with pytest.raises(KeelError, match="alias"):
        load_yaml(BOMB, "bomb.yaml")
    with pytest.raises(KeelError, match="refers to itself"):
        load_yaml("a: &a [1, *a]", "loop.yaml")
    assert load_yaml("base: &b {x: 1}\none: *b\ntwo: *b", "ok.yaml") == {"base": {"x": 1}, "one": {"x": 1},
                                                                         "two": {"x": 1}}


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(" " * i + "- \n" for i in range(1, 3000))])
def test_safe_yaml_refuses_deep_nesting(text):
    from keel.config import load_yaml

    with pytest.raises(KeelError, match="nested"):
        load_yaml(text, "deep.yaml")


def test_safe_yaml_refuses_python_tags():
    from keel.config import load_yaml

    with pytest.raises(KeelError, match="line 1"):
        load_yaml("x: !!python/object/apply:os.system ['true']", "tag.yaml")


def test_train_with_an_alias_bomb_config(keel, tmp_path):
    (tmp_path / "bomb.yaml").write_text(BOMB)
    refused(keel("train", "bomb.yaml"), "alias")
    assert not (tmp_path / "runs").exists()


def test_train_with_a_binary_config(keel, tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    refused(keel("train", "bin.yaml"), "utf-8")


@pytest.mark.parametrize("value", ["seed=[1", "seed=!!python/name:os.system", "seed={a: b", "ppo.x.y=: :"])
def test_bad_set_values(keel, value):
    refused(keel("train", "quickstart", "--set", value), "--set")


def test_set_into_a_scalar_is_refused(keel):
    refused(keel("train", "quickstart", "--set", "seed.x=1"), "seed")
