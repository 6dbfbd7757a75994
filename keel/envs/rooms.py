"""The 9-rooms and 16-rooms worlds of DiRL (Jothimurugan et al., NeurIPS 2021) for Keel.

    from keel.envs.rooms import RoomsGrid, BatchedRooms, RoomsContinuous
    env = RoomsGrid(n_rooms=16, obs_mode="onehot", slip=0.1)          # one copy, Gymnasium API
    envs = BatchedRooms(num_envs=64, n_rooms=16)                      # N copies as numpy arrays
    envs = BatchedRoomsContinuous(num_envs=64, n_rooms=16)            # the same for the continuous world
    env = gymnasium.make("keel/Rooms16-v0")                           # after `import keel.envs`

Every env speaks the proposition contract: `propositions`, `labels()`, `info["labels"]`,
`possible_labels_after(action)`, `predicate_names()`, `predicate_value(name, state)`,
`get_state()`, `set_state(state)`.
"""

from keel.envs.rooms_batched import BatchedRooms, BatchedRoomsContinuous
from keel.envs.rooms_continuous import RoomsContinuous
from keel.envs.rooms_grid import N_ACTIONS, OBS_MODES, SLIP_MODES, GridModel, RoomsGrid, make_model
from keel.envs.rooms_layout import LAYOUTS, NINE_ROOMS, SIXTEEN_ROOMS, Layout, get_layout

__all__ = [
    "BatchedRooms", "BatchedRoomsContinuous", "GridModel", "LAYOUTS", "Layout", "NINE_ROOMS", "N_ACTIONS", "OBS_MODES", "RoomsContinuous",
    "RoomsGrid", "SIXTEEN_ROOMS", "SLIP_MODES", "get_layout", "make_model",
]
