"""Lossless compact forms for what crosses between Ray actors every update: rollout batches and weights.

A spec-RL update moves a whole rollout from a worker to the learner and the weights back, and at this
scale (a rollout of ~60 ms) that copy is most of Ray's overhead. Two exact rewrites shrink it:

- float arrays holding only 0s and 1s (the product world's one-hot observations: 404 floats a row) travel
  as bits (`numpy.packbits`), 32x smaller, and are unpacked to the same float32 values;
- torch tensors travel as numpy arrays, which Ray's serializer hands over without pickling the data.

Everything else passes unchanged, so a batch unpacked is equal to the batch packed, bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BITS = "__keel_bits__"  # marks a packed array: (marker, packed bytes, shape, dtype name)
_MIN_BYTES = 1 << 16  # below this Ray inlines the object anyway; packing would only cost time


def _is_binary(a: np.ndarray) -> bool:
    return a.dtype.kind == "f" and a.nbytes >= _MIN_BYTES and a.ndim >= 1 and not np.any((a != 0) & (a != 1))


def pack(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with 0/1 float arrays bit-packed along their last axis (other entries as they are)."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, np.ndarray) and _is_binary(v):
            out[k] = (_BITS, np.packbits(v.astype(bool), axis=-1), v.shape, v.dtype.str)
        else:
            out[k] = v
    return out


def unpack(batch: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `pack`: arrays equal to the ones packed, same shape and dtype."""
    out: dict[str, Any] = {}
    for k, v in batch.items():
        if isinstance(v, tuple) and len(v) == 4 and v[0] == _BITS:
            _, bits, shape, dtype = v
            out[k] = np.unpackbits(bits, axis=-1, count=shape[-1]).astype(np.dtype(dtype)).reshape(shape)
        else:
            out[k] = v
    return out


def weights_out(weights: Any, copy: bool = True) -> Any:
    """A state dict's torch tensors as numpy arrays; weights that are not a dict (QRM's Q table, already
    numpy) as they are. `copy=False` shares the tensors' memory: only for an actor method's return value,
    which Ray serialises into the object store before the actor runs its next call (so the sender's next
    update cannot change what was sent); anything kept longer needs the copy."""
    if not isinstance(weights, dict):
        return weights
    return {k: (v.detach().cpu().numpy().copy() if copy else v.detach().cpu().numpy()) if hasattr(v, "detach")
            else v for k, v in weights.items()}


def weights_in(weights: Any) -> Any:
    """`weights_out` undone: numpy arrays back to torch tensors for `load_state_dict` (copied: the arrays
    Ray hands over are read-only views of the object store)."""
    if not isinstance(weights, dict):
        return weights
    import torch

    return {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in weights.items()}


def load_weights(model: Any, weights: dict[str, Any]) -> None:
    """`model.load_state_dict(weights_in(weights), strict=False)` without the intermediate copy: the tensors
    alias the (read-only) arrays Ray handed over, which is safe because `load_state_dict` only reads them
    into the model's own parameters."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        model.load_state_dict({k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                               for k, v in weights.items()}, strict=False)
