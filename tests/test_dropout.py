"""Mask-free dropout: the Philox generator, the mask's statistics, backward, modules."""

import math

import pytest
import torch

from helpers import DEVICES, GRAD_ACTIVATIONS, act_id, make_linear, reference_keeps
from mlpbench import nn as mnn
from mlpbench import ops


def test_philox_known_answers():
    # Random123's published known-answer vectors for philox4x32-10.
    assert ops.philox4x32((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C,
                                                    0x9B00DBD8)
    assert ops.philox4x32((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2) == (0x408F276D, 0x41C83B0E,
                                                                   0xA20BC7C6, 0x6D5451FD)
    assert ops.philox4x32((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                          (0xA4093822, 0x299F31D0)) == (0xD16CFE09, 0x94FDCCEB, 0x5001E420,
                                                        0x24126EA1)


def _mask(shape, p, seed, offset=0, device="cpu"):
    return ops.dropout(torch.ones(shape, device=device), p, seed=seed, offset=offset) != 0


def test_mask_is_the_documented_function_of_seed_offset_and_index():
    """Element i is kept when its 16-bit draw (half of word (i // 2) % 4 of
    the Philox output for counter (i // 8, offset) and key seed) beats
    ceil(p * 2^32) >> 16, ties going to a second draw (csrc/philox.h)."""
    seed, offset, p = 0x1234_5678_9ABC_DEF0, 0x0000_0003_0000_0002, 0.3
    mask = _mask((75,), p, seed, offset)
    assert mask.tolist() == reference_keeps(seed, offset, p, 0, 75)


def test_mask_does_not_depend_on_threads_or_shape():
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _mask((300_001,), 0.4, seed=99)
        torch.set_num_threads(max(2, old))
        many = _mask((300_001,), 0.4, seed=99)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one, many)
    assert torch.equal(_mask((7, 11, 13), 0.4, seed=5).flatten(), _mask((1001,), 0.4, seed=5))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_keep_rate_and_kept_values(p, device):
    n = 10**6
    x = torch.randn(n, device=device) + 3  # no zeros in x
    y = ops.dropout(x, p, seed=2024)
    kept = y != 0
    expected, sd = n * (1 - p), math.sqrt(n * p * (1 - p))
    assert abs(kept.sum().item() - expected) < 5 * sd
    # Kept values times 1 / (1 - p), rounded once to x's dtype: stock's bits.
    assert torch.equal(y[kept], x[kept] * (1 / (1 - p)))


@pytest.mark.parametrize("device", DEVICES)
def test_no_visible_correlation(device):
    mask = _mask((512, 512), 0.5, seed=7, device=device).float()
    # Neighbouring rows and columns differ, and their correlation is tiny.
    for a, b in ((mask[:-1], mask[1:]), (mask[:, :-1], mask[:, 1:])):
        assert not torch.equal(a, b)
        corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()
        assert abs(corr) < 0.01
    # Elements 4 apart (a new Philox block each) are independent too.
    flat = mask.flatten()
    corr = torch.corrcoef(torch.stack([flat[:-4], flat[4:]]))[0, 1].item()
    assert abs(corr) < 0.01


@pytest.mark.parametrize("device", DEVICES)
def test_same_seed_same_mask_other_seed_or_offset_other_mask(device):
    base = _mask((1000,), 0.5, seed=1, offset=0, device=device)
    assert torch.equal(base, _mask((1000,), 0.5, seed=1, offset=0, device=device))
    assert not torch.equal(base, _mask((1000,), 0.5, seed=2, offset=0, device=device))
    assert not torch.equal(base, _mask((1000,), 0.5, seed=1, offset=1, device=device))
    # 64-bit seeds: the high word matters.
    assert not torch.equal(base, _mask((1000,), 0.5, seed=1 + 2**40, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_zero_where_dropped_and_scaled_where_kept(device):
    p = 0.3
    x = torch.randn(50, 40, device=device, requires_grad=True)
    y = ops.dropout(x, p, seed=3)
    g = torch.randn_like(y)
    y.backward(g)
    kept = y != 0
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))
    assert torch.equal(x.grad[kept], g[kept] * (1 / (1 - p)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_linear_act_dropout_backward_matches_its_mask(act, device):
    name, kw = act
    p = 0.4
    x, w, b = make_linear(9, 12, name, kw, dtype=torch.float64, device=device, batch=(20,),
                          requires_grad=True)
    y = ops.linear_act(x, w, b, name, dropout_p=p, seed=77, **kw)
    plain = ops.linear_act(x, w, b, name, **kw)
    kept = _mask(y.shape, p, seed=77, device=device)
    torch.testing.assert_close(y, torch.where(kept, plain / (1 - p), 0.0))
    # The fused op equals dropout(linear_act(...)) with the same seed.
    torch.testing.assert_close(y, ops.dropout(plain, p, seed=77))
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gx_ref,) = torch.autograd.grad(plain, x, torch.where(kept, g / (1 - p), 0.0))
    torch.testing.assert_close(gx, gx_ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act", GRAD_ACTIVATIONS, ids=act_id)
def test_gradcheck_linear_act_with_dropout(act, device):
    name, kw = act
    x, w, b = make_linear(13, 5, name, kw, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: ops.linear_act(x, w, b, name, dropout_p=0.3, seed=5, offset=9, **kw),
        (x, w, b))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_dropout(device):
    x = torch.randn(11, 7, dtype=torch.float64, device=device).t().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.dropout(t, 0.35, seed=8), (x,))


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases(device):
    x = torch.randn(30, 20, device=device, requires_grad=True)
    assert ops.dropout(x, 0.0) is x
    assert ops.dropout(x, 0.7, training=False) is x
    y = ops.dropout(x, 1.0, seed=1)
    assert torch.equal(y, torch.zeros_like(y))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    empty = torch.randn(0, 5, device=device)
    assert ops.dropout(empty, 0.5, seed=1).shape == (0, 5)
    nc = torch.randn(20, 30, device=device).t()
    torch.testing.assert_close(ops.dropout(nc, 0.5, seed=4), ops.dropout(nc.contiguous(), 0.5,
                                                                           seed=4))
    # Eval and p = 0 for the fused op: exactly the op without dropout.
    xx, w, b = make_linear(6, 4, "relu", {}, device=device)
    plain = ops.linear_act(xx, w, b)
    assert torch.equal(ops.linear_act(xx, w, b, dropout_p=0.5, training=False), plain)
    assert torch.equal(ops.linear_act(xx, w, b, dropout_p=1.0, seed=3),
                       torch.zeros_like(plain))


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, math.inf])
def test_bad_probability(p):
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\]"):
        ops.dropout(torch.randn(3), p)
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\]"):
        ops.linear_act(torch.randn(2, 3), torch.randn(4, 3), dropout_p=p)


def test_bad_seed_and_offset():
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\)"):
        ops.dropout(torch.randn(3), 0.5, seed=-1)
    with pytest.raises(TypeError, match="offset must be an int"):
        ops.dropout(torch.randn(3), 0.5, seed=1, offset=1.5)
    with pytest.raises(TypeError, match="dropout probability must be a float"):
        ops.dropout(torch.randn(3), "0.5")
    # The full 64-bit range is accepted.
    ops.dropout(torch.randn(3), 0.5, seed=2**64 - 1, offset=2**64 - 1)


def test_modules_follow_train_eval_and_manual_seed():
    drop = mnn.FusedDropout(0.5)
    x = torch.randn(64, 64)
    torch.manual_seed(0)
    a1, a2 = drop(x), drop(x)
    assert not torch.equal(a1 != 0, a2 != 0)  # a new mask each call
    torch.manual_seed(0)
    assert torch.equal(drop(x), a1) and torch.equal(drop(x), a2)  # reproducible
    drop.eval()
    assert drop(x) is x

    torch.manual_seed(1)
    layer = mnn.FusedLinear(64, 32, "relu", dropout=0.3)
    torch.manual_seed(2)
    b1, b2 = layer(x), layer(x)
    assert not torch.equal(b1, b2)
    torch.manual_seed(2)
    assert torch.equal(layer(x), b1)
    layer.eval()
    torch.testing.assert_close(layer(x), torch.relu(x @ layer.weight.T + layer.bias))
