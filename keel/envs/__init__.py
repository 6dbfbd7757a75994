"""Keel's environments. Importing this package registers the rooms worlds with Gymnasium:

    keel/Rooms9-v0, keel/Rooms16-v0                       grid worlds (`keel.envs.rooms_grid.RoomsGrid`)
    keel/Rooms9Continuous-v0, keel/Rooms16Continuous-v0   continuous (`keel.envs.rooms_continuous`)
    keel/ToolWorldAgent-v0, keel/WebWorldAgent-v0, keel/ShoppingAgent-v0,
    keel/ResearchAgent-v0
                                                          agentic text envs (`keel.envs.agentic`)

Registration uses entry-point strings, so importing this package loads no environment code.
"""

import gymnasium

_ROOMS = {
    "keel/Rooms9-v0": ("keel.envs.rooms_grid:RoomsGrid", 9),
    "keel/Rooms16-v0": ("keel.envs.rooms_grid:RoomsGrid", 16),
    "keel/Rooms9Continuous-v0": ("keel.envs.rooms_continuous:RoomsContinuous", 9),
    "keel/Rooms16Continuous-v0": ("keel.envs.rooms_continuous:RoomsContinuous", 16),
}

for _id, (_entry, _n) in _ROOMS.items():
    if _id not in gymnasium.registry:
        # Episode length is the env's own `max_episode_steps` argument (so the batched env matches it);
        # Gymnasium's TimeLimit wrapper is not added on top.
        gymnasium.register(_id, entry_point=_entry, kwargs={"n_rooms": _n})

_AGENTIC = {
    "keel/ToolWorldAgent-v0": "keel.envs.toolworld.agentic_env:ToolworldAgentEnv",
    "keel/WebWorldAgent-v0": "keel.envs.webworld.agentic_env:WebworldAgentEnv",
    "keel/ShoppingAgent-v0": "keel.envs.shopping_agentic:ShoppingAgentEnv",
    "keel/ResearchAgent-v0": "keel.envs.research.agentic_env:ResearchAgentEnv",
}
for _id, _entry in _AGENTIC.items():
    if _id not in gymnasium.registry:
        # Episodes end on the env's own `max_turns` (truncated=True), so no TimeLimit wrapper.
        gymnasium.register(_id, entry_point=_entry)
