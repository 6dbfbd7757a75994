"""Federated PPO on Flower's Simulation Engine: a dropped client, DP accounting, SecAgg+ = plain FedAvg."""

from __future__ import annotations

import numpy as np
import pytest

from keel.errors import KeelError
from keel.scale import fed_rooms as rooms
from keel.scale.fed_config import FedConfig
from keel.scale.fed_dp import epsilon_per_round
from keel.scale.fed_run import check, simulate

SMALL = {"clients": 3, "rounds": 2, "local_steps": 512, "num_envs": 4, "min_fit_clients": 2,
         "ppo": {"n_steps": 32, "batch_size": 64, "lr": 3e-3}}


@pytest.mark.slow
def test_dropout_round_completes_with_the_rest(tmp_path):
    cfg = FedConfig.model_validate({**SMALL, "dropout": {"client": 1, "round": 1}})
    res = simulate(cfg, tmp_path)
    r1, r2 = res["rounds"]
    assert (r1["results"], r1["failures"]) == (2, 1)  # reported, and the round still aggregated
    assert (r2["results"], r2["failures"]) == (3, 0)


@pytest.mark.slow
def test_dp_reports_epsilon_per_round(tmp_path):
    cfg = FedConfig.model_validate({**SMALL, "dp": {"side": "server", "noise_multiplier": 0.5, "clip": 5.0}})
    r1, r2 = simulate(cfg, tmp_path)["rounds"]
    assert (r1["results"], r2["results"]) == (3, 3)
    assert 0 < r1["epsilon"] < r2["epsilon"]  # the budget is spent round by round


def test_epsilon_accounting_monotone():
    eps = epsilon_per_round(1.0, 1.0, 5, 1e-3)
    assert all(a < b for a, b in zip(eps, eps[1:], strict=False))
    assert epsilon_per_round(4.0, 1.0, 5, 1e-3)[-1] < eps[-1]  # more noise, less epsilon


def test_prox_pulls_towards_global():
    cfg = FedConfig.model_validate(SMALL)
    g = rooms.get_weights(rooms.new_policy(cfg))
    dist = []
    for mu in (0.0, 10.0):
        p = rooms.new_policy(cfg)
        rooms.local_train(cfg, 0, p, 1, mu=mu)
        dist.append(sum(float(np.sum((a - b) ** 2)) for a, b in zip(rooms.get_weights(p), g, strict=True)))
    assert dist[1] < dist[0]


def test_bad_config():
    with pytest.raises(KeelError, match="min_fit_clients"):
        check(FedConfig.model_validate({**SMALL, "min_fit_clients": 5}))


@pytest.mark.slow
def test_secagg_same_result(tmp_path):
    plain = simulate(FedConfig.model_validate(SMALL), tmp_path / "plain")
    sec = simulate(FedConfig.model_validate({**SMALL, "secagg": {"enabled": True}}), tmp_path / "secagg")
    assert [r["results"] for r in sec["rounds"]] == [3, 3]
    assert abs(plain["final_success"] - sec["final_success"]) <= 0.25  # quantisation only


@pytest.mark.slow
def test_keel_fed_run_cli(tmp_path):
    from typer.testing import CliRunner

    from keel.cli import app

    cfg = tmp_path / "fed.yaml"
    cfg.write_text(f"kind: fed\nrounds: 1\nlocal_steps: 256\nnum_envs: 4\nruns_dir: {tmp_path}\n"
                   "ppo: {n_steps: 32, batch_size: 64}\n")
    res = CliRunner().invoke(app, ["fed", "run", str(cfg), "--name", "f", "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "f" / "summary.json").is_file() and (tmp_path / "f" / "rounds.jsonl").is_file()


TEXT = {**SMALL, "world": "text", "clients": 2, "rounds": 1, "min_fit_clients": 1,
        "text": {"task": "instruct", "train_pool": 16, "eval_n": 4, "local_steps": 1,
                 "grpo": {"group_size": 4, "prompts_per_step": 2, "max_new_tokens": 4}}}


def test_text_clients_train_locally_and_prox_pulls_towards_global():
    from keel.scale import fed_text, fed_world

    cfg = FedConfig.model_validate(TEXT)
    check(cfg)
    assert {p.prompt for p in fed_text.pool_of(cfg, 0)}.isdisjoint({p.prompt for p in fed_text.pool_of(cfg, 1)})
    g = fed_world.init_params(cfg)
    dist = []
    for mu in (0.0, 50.0):
        new, samples, _ = fed_world.fit(cfg, 1, g, 1, mu=mu)
        assert samples == 1 * 2 * 4
        dist.append(sum(float(np.sum((a - b) ** 2)) for a, b in zip(new, g, strict=True)))
    assert 0 < dist[1] < dist[0]  # trained, and FedProx's proximal step keeps it nearer the global weights
    assert 0.0 <= fed_world.score(cfg, g, 0) <= 1.0
    by_reward = FedConfig.model_validate({**TEXT, "text": {**TEXT["text"], "score": "reward"}})
    acc, rew = fed_world.score(cfg, g, 0), fed_world.score(by_reward, g, 0)
    assert 0.0 <= acc <= rew <= 1.0  # partial credit: a correct reply earns full reward, others can earn some


def test_text_config_errors():
    with pytest.raises(KeelError, match="train_pool"):
        check(FedConfig.model_validate({**TEXT, "text": {**TEXT["text"], "train_pool": 2}}))
    with pytest.raises(KeelError, match="unknown text task"):
        check(FedConfig.model_validate({**TEXT, "text": {**TEXT["text"], "task": "poetry"}}))
    with pytest.raises(KeelError, match="ops"):  # a client's variant is checked too
        check(FedConfig.model_validate({**TEXT, "text": {**TEXT["text"], "task": "arithmetic",
                                                         "variants": [{"ops": "+"}, {"ops": "/"}]}}))


@pytest.mark.slow
def test_text_federation_on_the_simulation_engine(tmp_path):
    res = simulate(FedConfig.model_validate({**TEXT, "rounds": 2}), tmp_path)
    assert [r["results"] for r in res["rounds"]] == [2, 2]
    assert all(0.0 <= r["success"] <= 1.0 for r in res["rounds"])


def test_keel_fed_app_writes_a_flower_app(tmp_path):
    import tomllib

    from typer.testing import CliRunner

    from keel.cli import app

    cfg = tmp_path / "fed.yaml"
    cfg.write_text("kind: fed\nclients: 2\nrounds: 1\nmin_fit_clients: 1\n")
    res = CliRunner().invoke(app, ["fed", "app", str(cfg), str(tmp_path / "app"), "--out", str(tmp_path / "o"),
                                   "--set", "rounds=2", "--json"])
    assert res.exit_code == 0, res.output
    doc = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    conf = FedConfig.model_validate_json(doc["tool"]["flwr"]["app"]["config"]["keel-fed-config"])
    assert conf.rounds == 2 and conf.clients == 2
    assert doc["tool"]["flwr"]["app"]["components"]["clientapp"] == "keel.scale.fed_deploy:client"
    res = CliRunner().invoke(app, ["fed", "app", str(cfg), str(tmp_path / "bad"), "--set", "min_fit_clients=5"])
    assert "min_fit_clients" in str(res.exception)
