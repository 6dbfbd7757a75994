"""The Ray wire forms are exact: a packed batch unpacks to the same arrays, weights round-trip."""

import numpy as np
import torch

from keel.scale.wire import pack, unpack, weights_in, weights_out


def test_one_hot_floats_travel_as_bits_and_come_back_equal():
    rng = np.random.default_rng(0)
    x = np.zeros((64, 8, 403), np.float32)  # 403: the last byte of each row is partly padding
    x[np.arange(64)[:, None], np.arange(8)[None], rng.integers(0, 403, (64, 8))] = 1.0
    values = rng.normal(size=(64, 8)).astype(np.float32)
    big_noise = rng.normal(size=(64, 8, 403)).astype(np.float32)  # not 0/1: must pass unchanged
    batch = {"x": x, "values": values, "noise": big_noise, "dones": values > 0, "next_value": values[0]}
    wire = pack(batch)
    assert isinstance(wire["x"], tuple) and wire["x"][1].nbytes * 31 < x.nbytes  # ~32x smaller
    assert wire["noise"] is big_noise and wire["values"] is values
    back = unpack(wire)
    assert back.keys() == batch.keys()
    for k in batch:
        assert back[k].dtype == batch[k].dtype and np.array_equal(back[k], batch[k]), k


def test_weights_round_trip_as_numpy_and_tables_pass_through():
    w = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.float32)}
    out = weights_out(w)
    assert all(isinstance(v, np.ndarray) for v in out.values())
    out["a"].setflags(write=False)  # what the object store hands over
    back = weights_in(out)
    assert all(torch.equal(back[k], w[k]) for k in w)
    back["a"] += 1  # writable, and not the sender's tensor
    assert not torch.equal(back["a"], w["a"])
    q = np.ones((2, 3))
    assert weights_out(q) is q and weights_in(q) is q


def test_load_weights_reads_read_only_arrays_into_the_models_own_parameters():
    import warnings

    from keel.scale.wire import load_weights

    src, dst = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    sent = weights_out(dict(src.named_parameters()), copy=False)
    assert np.shares_memory(sent["weight"], src.weight.detach().numpy())  # no copy on the sender's side
    for v in sent.values():
        v.setflags(write=False)  # what the object store hands over
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_weights(dst, sent)
    assert torch.equal(dst.weight, src.weight) and torch.equal(dst.bias, src.bias)
    with torch.no_grad():
        dst.weight += 1  # the receiver's parameters are its own, not the arrays it was handed
    assert not np.array_equal(sent["weight"], dst.weight.detach().numpy())
