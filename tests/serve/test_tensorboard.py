"""TensorBoard event files beside metrics.jsonl, read back with TensorBoard's own loaders; --log checks."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import plugin_data_pb2

from keel.errors import KeelError
from keel.runs import Run
from keel.trackers import check_external, hparams_of, scalars


def _events(path):
    ea = EventAccumulator(str(path))
    ea.Reload()
    return ea


def _hparams(ea) -> dict:
    blob = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(blob).session_start_info
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def test_metrics_summary_and_config_reach_tensorboard(tmp_path):
    cfg = {"kind": "spec_rl", "seed": 3, "ppo": {"lr": 0.01, "hidden": 64}, "formula": "F a", "shield": None}
    r = Run.create(tmp_path, "a", cfg, "quickstart")
    for i in range(4):
        r.log(i * 10, loss=1.0 / (i + 1), ok=True, note="text", nested={"x": i})
    r.write_summary({"satisfaction": 0.75, "table": [{"agent": "follower", "defence": "guard", "asr": 0.1}]})
    r.close()
    assert len(r.metrics()) == 4  # metrics.jsonl stays the source of truth
    ea = _events(r.path)
    assert set(ea.Tags()["scalars"]) == {"loss", "nested/x", "summary/satisfaction",
                                          "summary/table/follower/guard/asr"}
    assert [(e.step, round(e.value, 4)) for e in ea.Scalars("loss")] == [(0, 1.0), (10, 0.5), (20, 0.3333), (30, 0.25)]
    assert ea.Scalars("summary/satisfaction")[0].value == 0.75
    hp = _hparams(ea)
    assert hp["seed"] == 3 and hp["ppo.lr"] == pytest.approx(0.01) and hp["formula"] == "F a"
    # what `tensorboard --logdir runs` loads: one TensorBoard run per Keel run directory
    mux = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    assert list(mux.Runs()) == ["a"]


def test_resume_drops_the_events_the_metrics_log_dropped(tmp_path):
    r = Run.create(tmp_path, "b", {"kind": "spec_rl"}, "x")
    for i in range(5):
        r.log(i, loss=float(i))
    r.close()
    again = Run.open(tmp_path / "b")
    again.truncate_metrics(2)  # resuming from the checkpoint at step 2
    again.log(3, loss=30.0)
    again.close()
    assert [e.value for e in _events(again.path).Scalars("loss")] == [0.0, 1.0, 2.0, 30.0]


def test_scalars_and_hparams_flatten():
    assert scalars({"step": 1, "a": 1, "b": True, "c": "x", "d": float("nan"), "e": {"f": 2.5}}) == {"a": 1.0, "e/f": 2.5}
    assert hparams_of({"a": {"b": 1}, "c": [1, 2], "d": None}) == {"a.b": 1, "c": "[1, 2]", "d": "null"}


def test_log_choices_are_checked():
    with pytest.raises(KeelError, match="not supported"):
        check_external(["mlflow"])
    for name in ("wandb", "trackio"):
        if importlib.util.find_spec(name) is None:
            with pytest.raises(KeelError, match=f"pip install {name}"):
                check_external([name])


def test_a_real_spec_run_logs_to_tensorboard_and_draws_its_automaton(tmp_path):
    from typer.testing import CliRunner

    from keel.cli import app

    cfg = {"kind": "spec_rl", "runs_dir": str(tmp_path), "total_steps": 4000, "num_envs": 4, "log_every": 1000,
           "checkpoint_every": 2000, "eval_episodes": 2, "env": {"rooms": 9, "max_episode_steps": 60}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--name", "s", "--json"])
    assert res.exit_code == 0, res.output
    ea = _events(tmp_path / "s")
    assert len(ea.Scalars("satisfaction_train")) == 4 and "summary/satisfaction" in ea.Tags()["scalars"]
    assert _hparams(ea)["formula"] == "F(goal_a & F goal_b) & G !hazard"
    report = (tmp_path / "s" / "report.html").read_text()
    assert "<svg" in report and "<summary>DOT source</summary>" in report
    # the DOT text is folded under the picture, no longer shown instead of it
    assert report.count("<pre>digraph") == report.count("<summary>DOT source</summary><pre>digraph") == 1
    bad = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--name", "t", "--log", "mlflow"])
    assert bad.exit_code != 0 and "not supported" in str(bad.exception)
    assert not (tmp_path / "t").exists()
