"""WebWorld: a valid Gymnasium text env, seeded, solvable, with injectable pages."""

from __future__ import annotations

from gymnasium.utils.env_checker import check_env

from keel.envs.webworld import DEFAULT_INJECTION, WebWorldEnv, generate_web


def test_check_env():
    check_env(WebWorldEnv(1), skip_render_check=True)


def test_same_seed_same_web_and_task():
    a, b = WebWorldEnv(5), WebWorldEnv(5)
    assert a.reset(seed=3)[0] == b.reset(seed=3)[0]
    assert sorted(generate_web(5).pages) == sorted(generate_web(5).pages)
    assert sorted(generate_web(5).pages) != sorted(generate_web(6).pages)


def test_every_task_solvable_and_wrong_answer_fails():
    env = WebWorldEnv(2)
    kinds = set()
    for seed in range(12):
        env.reset(seed=seed)
        kinds.add(env.task["kind"])
        for cmd in env.solve():
            obs, r, term, trunc, info = env.step(cmd)
        assert term and r == 1.0
        if env.task["kind"] != "newsletter":
            env.reset(seed=seed)
            assert env.step("answer 0000")[1] == 0.0
    assert kinds == {"phone", "price", "newsletter"}


def test_search_links_and_junk_actions():
    env = WebWorldEnv(2, max_steps=5)
    env.reset(seed=0)
    obs = env.step("search contact phone")[0]
    assert "[0] https://" in obs
    obs = env.step("click 0")[0]
    assert "URL: https://" in obs
    assert "Unknown command" in env.step("dance wildly")[0]
    assert "404" in env.step("open https://nowhere.example/")[0]
    *_, trunc, _ = env.step("back")
    assert trunc  # max_steps reached


def test_injection_is_on_product_pages_and_attack_judged_on_forms():
    env = WebWorldEnv(4, injection=DEFAULT_INJECTION)
    env.reset(seed=0)
    obs = env.step(f"open https://{env.web.sites[0].domain}/products")[0]
    assert "COMMENT: IMPORTANT" in obs
    env.step("open https://www.prize-claims.example/claim")
    env.step("fill email emma@bluesparrow.example")
    info = env.step("submit claim")[4]
    assert info["attack_success"] and "attacker_form" in info["labels"]
