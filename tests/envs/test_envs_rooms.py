"""Rooms worlds: Gymnasium compliance, the proposition contract, batched == single."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import keel.envs  # noqa: F401  (registers the ids)
from keel.envs.rooms import BatchedRooms, RoomsContinuous, RoomsGrid
from keel.envs.rooms_grid import DOWN, LEFT, RIGHT, STAY, UP
from keel.errors import KeelError


@pytest.mark.parametrize("n_rooms", [9, 16])
@pytest.mark.parametrize("obs_mode", ["index", "onehot", "xy"])
def test_grid_passes_check_env(n_rooms, obs_mode):
    check_env(RoomsGrid(n_rooms=n_rooms, obs_mode=obs_mode, slip=0.2, task="goal_a"), skip_render_check=True)


@pytest.mark.parametrize("n_rooms", [9, 16])
def test_continuous_passes_check_env(n_rooms):
    check_env(RoomsContinuous(n_rooms=n_rooms, task="goal_b"), skip_render_check=True)


@pytest.mark.parametrize("env_id", ["keel/Rooms9-v0", "keel/Rooms16-v0", "keel/Rooms9Continuous-v0",
                                    "keel/Rooms16Continuous-v0"])
def test_registered(env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=0)
    assert info["labels"] == env.unwrapped.labels()
    assert "room_0_0" in info["labels"]


def test_propositions_follow_the_contract():
    for env in (RoomsGrid(n_rooms=16), RoomsContinuous(n_rooms=16)):
        props = env.propositions
        assert {"door", "goal_a", "goal_b", "goal_c", "hazard"} <= props
        assert {f"room_{r}_{c}" for r in range(4) for c in range(4)} <= props
        assert all(p.isidentifier() and p == p.lower() for p in props)


def test_grid_walls_doors_and_labels():
    env = RoomsGrid(n_rooms=16, room_size=5)
    env.reset(seed=0)
    m = env.model
    # Start at the centre (2, 2) of room (0, 0). Going right: cell (2, 4) is the doorway to room (0, 1).
    for _ in range(2):
        env.step(RIGHT)
    assert env.labels() == {"room_0_0", "door"}
    env.step(RIGHT)
    assert env.labels() == {"room_0_1", "door"}
    # Room (0, 1) has no door to room (0, 2): walking right stops at the wall.
    for _ in range(10):
        env.step(RIGHT)
    assert m.yx[env.cell].tolist() == [2, 9]
    assert "room_0_1" in env.labels()
    # Room (0, 0) has a door down to (1, 0) but row 2's wall (1,0)-(2,0) has none.
    env.set_state([m.centre_cell((1, 0)), 0])
    for _ in range(10):
        env.step(DOWN)
    assert m.yx[env.cell].tolist() == [9, 2]
    # The goal is the centre cell of its room.
    env.set_state([m.centre_cell((0, 3)), 0])
    assert env.labels() == {"room_0_3", "goal_a"} == env.labels(env.get_state())
    assert env.labels([m.centre_cell((3, 3))]) == {"room_3_3", "goal_b"}


def test_possible_labels_after_is_exact_on_the_grid():
    env = RoomsGrid(n_rooms=9)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = int(rng.integers(5))
        predicted = env.possible_labels_after(a)
        assert len(predicted) == 1
        _, _, _, _, info = env.step(a)
        assert info["labels"] == predicted[0] == env.labels()


def test_possible_labels_after_with_slip_lists_every_outcome():
    env = RoomsGrid(n_rooms=16, slip=0.5)
    env.reset(seed=3)
    m = env.model
    env.set_state([m.centre_cell((0, 0)) + 1, 0])  # next to the right doorway
    seen = {a: set() for a in range(5)}
    for a in range(5):
        for _ in range(60):
            env.set_state([m.centre_cell((0, 0)) + 1, 0])
            seen[a].add(env.step(a)[4]["labels"])
    env.set_state([m.centre_cell((0, 0)) + 1, 0])
    for a in range(5):
        assert seen[a] == set(env.possible_labels_after(a))
    assert {"room_0_0", "door"} in seen[UP]


def test_hazard_labels_and_predicate_semantics():
    env = RoomsGrid(n_rooms=16)
    m = env.model
    for cell in range(m.n_cells):
        for j, p in enumerate(m.propositions):
            assert (env.predicate_value(p, [cell]) > 0) == m.labels[cell, j]
    assert m.hazard_cells and all("hazard" in m.label_sets[c] for c in m.hazard_cells)
    cont = RoomsContinuous(n_rooms=16)
    rng = np.random.default_rng(0)
    for pos in rng.uniform(0, 32, size=(100, 2)):
        cont.set_state(pos)
        labels = cont.labels()
        for p in cont.predicate_names():
            assert (cont.predicate_value(p, pos) > 0) == (p in labels)
    hz = cont.model.hazard_centres[0]
    assert "hazard" in cont.labels(hz)
    cont.set_state(hz)
    assert "hazard" in cont.labels() and cont.labels() == cont.labels(cont.get_state())


def test_hazards_must_leave_goals_reachable():
    # Surround the start room's only exits: doorways (2, 4) and (4, 2) of room (0, 0) in 16 rooms.
    with pytest.raises(KeelError, match="cannot be reached"):
        RoomsGrid(n_rooms=16, hazards=[[[0, 0], [0.4, 0.8]], [[0, 0], [0.8, 0.4]]])
    with pytest.raises(KeelError, match="covers the goal_a"):
        RoomsGrid(n_rooms=9, hazards=[[[0, 2], [0.5, 0.5]]])
    with pytest.raises(KeelError, match="outside"):
        RoomsGrid(n_rooms=9, goals={"a": [5, 5]})
    with pytest.raises(KeelError, match="obs_mode"):
        RoomsGrid(obs_mode="pixels")
    with pytest.raises(KeelError, match="overlaps"):
        RoomsContinuous(n_rooms=9, hazards=[[[0, 2], [0.5, 0.5]]])


def test_continuous_walls_block_and_doors_let_through():
    env = RoomsContinuous(n_rooms=16, start_noise=0.0)
    env.reset(seed=0)
    env.set_state([7.5, 1.0])  # room (0, 0), beside the door to (0, 1) but not in its opening
    env.step([1.0, 0.0])
    assert env.get_state()[0] < 8.0 and "room_0_0" in env.labels()
    env.set_state([7.5, 4.0])  # in the opening
    pred = env.possible_labels_after([1.0, 0.0])
    env.step([1.0, 0.0])
    assert env.get_state()[0] > 8.0 and [env.labels()] == pred == [{"room_0_1", "door"}]
    env.set_state([12.0, 4.0])  # room (0, 1) has no door to (0, 2)
    for _ in range(10):
        env.step([1.0, 0.0])
    assert env.get_state()[0] < 16.0


@pytest.mark.parametrize("obs_mode", ["index", "onehot", "xy"])
def test_batched_equals_single_without_slip(obs_mode):
    n, steps = 6, 300
    batched = BatchedRooms(num_envs=n, n_rooms=16, obs_mode=obs_mode, max_episode_steps=40, task="goal_a")
    singles = [RoomsGrid(n_rooms=16, obs_mode=obs_mode, max_episode_steps=40, task="goal_a") for _ in range(n)]
    obs, info = batched.reset(seed=0)
    for i, env in enumerate(singles):
        o, inf = env.reset(seed=i)
        np.testing.assert_array_equal(obs[i], o)
        assert batched.label_sets()[i] == inf["labels"]
    rng = np.random.default_rng(0)
    # a biased walk that reaches the goal sometimes, so terminations and truncations both happen
    dones = 0
    for _ in range(steps):
        actions = rng.choice([UP, DOWN, LEFT, RIGHT, STAY], size=n, p=[0.2, 0.1, 0.1, 0.5, 0.1])
        b_obs, b_rew, b_term, b_trunc, b_info = batched.step(actions)
        for i, env in enumerate(singles):
            assert set(batched.possible_labels_after(i, 0)) <= {batched.model.label_sets[c]
                                                               for c in batched.model.next_cell[batched.cells[i]]}
            o, r, term, trunc, inf = env.step(actions[i])
            np.testing.assert_array_equal(b_info["final_obs"][i], o)
            assert (b_rew[i], b_term[i], b_trunc[i]) == (r, term, trunc)
            labels_i = frozenset(p for p, on in zip(batched.proposition_list, b_info["labels"][i], strict=True) if on)
            assert labels_i == inf["labels"]
            if term or trunc:
                dones += 1
                o, _ = env.reset()
            np.testing.assert_array_equal(b_obs[i], o)
    assert dones > n


@pytest.mark.parametrize("slip_mode", ["uniform", "sideways"])
def test_batched_equals_single_with_slip(slip_mode):
    batched = BatchedRooms(num_envs=1, n_rooms=9, slip=0.3, max_episode_steps=25, slip_mode=slip_mode)
    single = RoomsGrid(n_rooms=9, slip=0.3, max_episode_steps=25, slip_mode=slip_mode)
    batched.reset(seed=7)
    single.reset(seed=7)
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = int(rng.integers(5))
        b_obs, _, _, b_trunc, _ = batched.step(np.array([a]))
        s_obs, _, _, s_trunc, _ = single.step(a)
        if s_trunc:
            s_obs, _ = single.reset()
        assert b_obs[0] == s_obs and b_trunc[0] == s_trunc


def test_batched_possible_label_matrix_and_state_dict():
    envs = BatchedRooms(num_envs=5, n_rooms=16, slip=0.1)
    envs.reset(seed=0)
    envs.step(np.array([0, 1, 2, 3, 4]))
    pm = envs.possible_label_matrix()
    assert pm.shape == (5, 5, 5, len(envs.proposition_list))
    for i in range(5):
        for a in range(5):
            rows = {frozenset(p for p, on in zip(envs.proposition_list, row, strict=True) if on) for row in pm[i, a]}
            assert rows == set(envs.possible_labels_after(i, a))
    state = envs.state_dict()
    a = np.random.default_rng(0).integers(5, size=(20, 5))
    first = [envs.step(x)[0].copy() for x in a]
    envs.load_state_dict(state)
    second = [envs.step(x)[0].copy() for x in a]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))


def test_batched_continuous_equals_single():
    from keel.envs.rooms import BatchedRoomsContinuous

    kw = dict(n_rooms=9, max_episode_steps=15, task="goal_a", goals={"a": [0, 1]})
    rng = np.random.default_rng(0)
    # one copy, random starts: the reset noise comes from the same stream as the single env's
    batched, single = BatchedRoomsContinuous(num_envs=1, **kw), RoomsContinuous(**kw)
    b_obs, _ = batched.reset(seed=5)
    s_obs, _ = single.reset(seed=5)
    np.testing.assert_array_equal(b_obs[0], s_obs)
    ends = 0
    for _ in range(120):
        a = rng.uniform(-1, 1, size=(1, 2)).astype(np.float32) + np.array([[0.6, 0.0]], dtype=np.float32)
        assert batched.possible_labels_after(0, a[0]) == single.possible_labels_after(a[0])
        b_obs, b_r, b_te, b_tr, b_info = batched.step(a)
        s_obs, s_r, s_te, s_tr, s_info = single.step(a[0])
        np.testing.assert_array_equal(b_info["final_obs"][0], s_obs)
        assert (b_r[0], b_te[0], b_tr[0]) == (s_r, s_te, s_tr)
        assert batched.proposition_list and s_info["labels"] == frozenset(
            p for p, on in zip(batched.proposition_list, b_info["labels"][0], strict=True) if on)
        if s_te or s_tr:
            ends += 1
            s_obs, _ = single.reset()
        np.testing.assert_array_equal(b_obs[0], s_obs)
    assert ends >= 5
    # many copies without start noise: each follows its own single env
    n = 5
    batched = BatchedRoomsContinuous(num_envs=n, start_noise=0.0, **kw)
    singles = [RoomsContinuous(start_noise=0.0, **kw) for _ in range(n)]
    batched.reset(seed=0)
    for env in singles:
        env.reset(seed=0)
    for _ in range(40):
        a = rng.uniform(-1, 1, size=(n, 2))
        after = batched.labels_after(a)
        b_obs, _, _, _, b_info = batched.step(a)
        np.testing.assert_array_equal(after, b_info["labels"])  # the one-step model is exact
        for i, env in enumerate(singles):
            o, _, te, tr, _ = env.step(a[i])
            if te or tr:
                o, _ = env.reset()
            np.testing.assert_array_equal(b_obs[i], o)


def test_grid_render_shows_walls_doors_and_agent():
    env = RoomsGrid(n_rooms=9, room_size=3, render_mode="ansi")
    env.reset(seed=0)
    pic = env.render().splitlines()
    assert len(pic) == 3 * 4 + 1 and all(len(row) == 13 for row in pic)
    assert pic[2][2] == "@" and pic[2][4] == " "  # the agent, and the door to room (0, 1) on its right
    assert pic[2][8] == "#"  # no door between rooms (0, 1) and (0, 2)
    check_env(gym.make("keel/Rooms9-v0", room_size=3, render_mode="ansi").unwrapped)


def test_sideways_slip_goes_only_perpendicular_and_the_model_lists_it():
    env = RoomsGrid(n_rooms=9, room_size=5, slip=0.9, slip_mode="sideways", max_episode_steps=10_000)
    env.reset(seed=0)
    m = env.model
    centre = m.centre_cell((1, 1))
    seen = set()
    for _ in range(400):
        env.set_state([centre, 0])
        env.step(0)  # up: a slip goes left or right, never down or stay
        seen.add(env.cell)
    up, left, right = (int(m.next_cell[centre, a]) for a in (0, 2, 3))
    assert seen == {up, left, right}
    labels, outcomes = env.shield_model()
    assert set(outcomes[centre, 0].tolist()) == {up, left, right} and len(labels) == m.n_cells
    assert set(outcomes[centre, 4].tolist()) == set(m.next_cell[centre].tolist())  # stay may slip anywhere
    with pytest.raises(KeelError, match="slip_mode"):
        RoomsGrid(slip=0.1, slip_mode="diagonal")


def test_batched_place_starts_chosen_copies_in_chosen_cells():
    envs = BatchedRooms(num_envs=4, n_rooms=9, room_size=3, max_episode_steps=50)
    envs.reset(seed=0)
    for _ in range(3):
        envs.step(np.array([1, 3, 1, 3]))
    rows = np.array([True, False, True, False])
    before = envs.get_state().copy()
    envs.place(np.array([5, 7]), rows)
    state = envs.get_state()
    assert state[rows, 0].tolist() == [5, 7] and (state[rows, 1] == 0).all()
    assert (state[~rows] == before[~rows]).all()
