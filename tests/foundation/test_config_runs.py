"""Config loading, run directories and atomic writes: the ground every job stands on."""

import json

import pytest

from keel.config import JobConfig, apply_overrides, read_yaml, validate
from keel.errors import KeelError
from keel.io import atomic_write_json
from keel.runs import Run


class ToyConfig(JobConfig):
    lr: float = 0.1
    steps: int = 10


def test_unknown_field_is_named():
    with pytest.raises(KeelError, match="lrr: unknown field"):
        validate(ToyConfig, {"kind": "toy", "lrr": 0.2}, "toy.yaml")


def test_ill_typed_field_is_named():
    with pytest.raises(KeelError, match="steps"):
        validate(ToyConfig, {"kind": "toy", "steps": "many"}, "toy.yaml")


def test_bad_yaml_names_line():
    with pytest.raises(KeelError, match="line 2"):
        read_yaml("a: 1\nb: c: d\n", "x.yaml")


def test_overrides_parse_values():
    data = apply_overrides({"kind": "toy"}, ["seed=3", "ppo.lr=0.5"])
    assert data == {"kind": "toy", "seed": 3, "ppo": {"lr": 0.5}}
    with pytest.raises(KeelError, match="field=value"):
        apply_overrides({}, ["seed"])


def test_run_metrics_checkpoint_resume(tmp_path):
    run = Run.create(tmp_path, "r1", {"kind": "toy"}, "toy")
    for step in range(1, 6):
        run.log(step, loss=1.0 / step)
        if step == 3:
            run.save_checkpoint({"w": [step]}, step)
    run.close()
    with pytest.raises(KeelError, match="already exists"):
        Run.create(tmp_path, "r1", {"kind": "toy"}, "toy")
    again = Run.open(tmp_path / "r1")
    state, step = again.load_checkpoint()
    assert step == 3 and state == {"w": [3]}
    again.truncate_metrics(step)
    assert [r["step"] for r in again.metrics()] == [1, 2, 3]
    assert Run.latest_unfinished(tmp_path, "toy").path == again.path


def test_torn_metrics_line_is_ignored(tmp_path):
    run = Run.create(tmp_path, "r", {"kind": "toy"}, "toy")
    run.log(1, x=1.0)
    run.close()
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "x"')
    assert [r["step"] for r in run.metrics()] == [1]


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_not_a_run_dir(tmp_path):
    with pytest.raises(KeelError, match="not a Keel run directory"):
        Run.open(tmp_path / "nope")


class _Payload:
    """A pickle that would create a file when unpickled: what a hostile checkpoint would do."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_checkpoint_with_code_is_refused_not_run(tmp_path):
    import io

    import numpy as np
    import torch

    run = Run.create(tmp_path, "r", {"kind": "x"}, "x")
    good = {"w": torch.ones(2), "rng": np.random.default_rng(0).bit_generator.state, "arr": np.arange(3)}
    run.save_checkpoint(good, 1)
    state, step = run.load_checkpoint()
    assert step == 1 and np.array_equal(state["arr"], np.arange(3)) and torch.equal(state["w"], torch.ones(2))

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"step": 2, "state": {"x": _Payload(marker)}}, buf)
    (run.checkpoints / "step_0000000002.pt").write_bytes(buf.getvalue())
    with pytest.raises(KeelError, match="refused"):
        run.load_checkpoint()
    assert not marker.exists()
