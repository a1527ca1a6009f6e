"""elman.losses against central finite differences (float64) and against torch.nn.functional."""

import numpy as np
import pytest

from elman import losses

from conftest import numerical_gradient, rel_error

T, B, C = 4, 3, 5
ELEMENTWISE = ["mse", "binary_cross_entropy_with_logits", "binary_cross_entropy"]


def random_case(rng, name, shape=(T, B, C), dtype=np.float64):
    """(predictions, targets) suited to the loss: probabilities for BCE, anything for MSE."""
    if name == "cross_entropy":
        return rng.standard_normal(shape).astype(dtype), rng.integers(0, shape[-1], size=shape[:-1])
    if name == "binary_cross_entropy":
        return rng.uniform(0.05, 0.95, size=shape).astype(dtype), rng.uniform(0, 1, size=shape).astype(dtype)
    if name == "binary_cross_entropy_with_logits":
        return 2 * rng.standard_normal(shape).astype(dtype), rng.uniform(0, 1, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def random_mask(rng, shape):
    mask = rng.uniform(0.0, 2.0, size=shape)
    mask[rng.random(shape) < 0.3] = 0  # some positions switched off
    return mask


# cross_entropy's mask weighs positions [T, B] (or whole steps [T]); the elementwise losses also
# take one weight per entry.
MASKED_CASES = [(name, shape) for name in ["cross_entropy"] + ELEMENTWISE
                for shape in (None, (T,), (T, B), (T, B, C))
                if not (name == "cross_entropy" and shape == (T, B, C))]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name, mask_shape", MASKED_CASES, ids=[f"{n}-mask{s}" for n, s in MASKED_CASES])
def test_gradient_matches_finite_differences(name, mask_shape, reduction, rng):
    loss_fn = getattr(losses, name)
    pred, target = random_case(rng, name)
    mask = None if mask_shape is None else random_mask(rng, mask_shape)
    loss, grad = loss_fn(pred, target, mask=mask, reduction=reduction)
    assert isinstance(loss, float) and grad.shape == pred.shape and grad.dtype == np.float64
    numerical = numerical_gradient(lambda p: loss_fn(p, target, mask=mask, reduction=reduction)[0], pred)
    assert rel_error(grad, numerical) < 1e-8


def torch_loss(name, pred, target, reduction):
    """The same loss computed by torch.nn.functional, and its gradient."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    if name == "cross_entropy":
        loss = F.cross_entropy(p.reshape(-1, pred.shape[-1]), t.reshape(-1), reduction=reduction)
    else:
        loss = getattr(F, {"mse": "mse_loss"}.get(name, name))(p, t, reduction=reduction)
    loss.backward()
    return loss.item(), p.grad.numpy()


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["cross_entropy"] + ELEMENTWISE)
def test_matches_torch(name, reduction, dtype, tol, rng):
    pytest.importorskip("torch")
    pred, target = random_case(rng, name, dtype=dtype)
    expected_loss, expected_grad = torch_loss(name, pred, target, reduction)
    loss, grad = getattr(losses, name)(pred, target, reduction=reduction)
    assert grad.dtype == dtype
    assert loss == pytest.approx(expected_loss, rel=tol)
    np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol * np.abs(expected_grad).max())


def test_binary_cross_entropy_clamps_like_torch_at_zero_and_one():
    pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    expected_loss, expected_grad = torch_loss("binary_cross_entropy", p, y, "sum")
    loss, grad = losses.binary_cross_entropy(p, y, reduction="sum")
    assert loss == pytest.approx(expected_loss, rel=1e-12)  # 200 + log 2: each log clamped at -100
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


def test_bce_with_logits_is_stable_for_huge_logits():
    z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    y = np.array([1.0, 1.0, 0.5, 0.0, 0.0])
    loss, grad = losses.binary_cross_entropy_with_logits(z, y, reduction="sum")
    # -log sigmoid(-1e4) = 1e4 and -log(1 - sigmoid(1e4)) = 1e4 exactly in float64
    assert loss == pytest.approx(2e4 + 100 + np.log(2), rel=1e-12)
    np.testing.assert_allclose(grad, [-1.0, -1.0, 0.0, 1.0, 1.0], atol=1e-20)


@pytest.mark.parametrize("name", ["cross_entropy"] + ELEMENTWISE)
def test_masked_positions_count_for_nothing_even_when_nan(name, rng):
    pred, target = random_case(rng, name)
    mask = np.ones((T, B), dtype=bool)
    mask[1, 2] = mask[3, 0] = False
    poisoned = pred.copy()
    poisoned[1, 2] = np.nan
    poisoned[3, 0] = np.nan
    loss, grad = getattr(losses, name)(poisoned, target, mask=mask)
    kept_pred = pred[mask]  # [kept, C]: the unmasked positions only
    kept_loss, kept_grad = getattr(losses, name)(kept_pred, target[mask])
    assert loss == pytest.approx(kept_loss, rel=1e-12)
    np.testing.assert_allclose(grad[mask], kept_grad, rtol=1e-12)
    assert np.all(grad[~mask] == 0)


@pytest.mark.parametrize("name", ["cross_entropy"] + ELEMENTWISE)
def test_a_mask_of_zeros_gives_zero(name, rng):
    pred, target = random_case(rng, name)
    loss, grad = getattr(losses, name)(pred, target, mask=np.zeros((T, B)))
    assert loss == 0.0
    assert grad.shape == pred.shape and not grad.any()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_float32_in_float32_out_and_inputs_untouched(name, rng):
    pred, target = random_case(rng, name, dtype=np.float32)
    pred_before, target_before = pred.copy(), target.copy()
    loss, grad = getattr(losses, name)(pred, target, mask=np.ones((T, B)))
    assert grad.dtype == np.float32 and isinstance(loss, float)
    np.testing.assert_array_equal(pred, pred_before)
    np.testing.assert_array_equal(target, target_before)


def test_mse_by_hand():
    loss, grad = losses.mse([[1.0, 2.0], [3.0, 5.0]], [[1.0, 1.0], [1.0, 1.0]])
    assert loss == (0 + 1 + 4 + 16) / 4
    np.testing.assert_array_equal(grad, [[0.0, 0.5], [1.0, 2.0]])


def test_bad_arguments_say_what_is_wrong(rng):
    pred, target = random_case(rng, "mse")
    with pytest.raises(ValueError, match=r"targets has shape \(4, 3\), expected \(4, 3, 5\)"):
        losses.mse(pred, target[..., 0])
    with pytest.raises(ValueError, match=r"mask has shape \(3,\), expected predictions's shape"):
        losses.mse(pred, target, mask=np.ones(B))
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'none'"):
        losses.mse(pred, target, reduction="none")
    with pytest.raises(ValueError, match="reduction must be"):
        losses.cross_entropy(pred, np.zeros((T, B), dtype=int), reduction="avg")
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
        losses.binary_cross_entropy_with_logits(pred, target)
    with pytest.raises(ValueError, match=r"probabilities must lie in \[0, 1\]"):
        losses.binary_cross_entropy(pred, np.zeros_like(pred))
    with pytest.raises(TypeError, match="predictions must hold real numbers"):
        losses.mse(np.array(["a", "b"]), np.zeros(2))


@pytest.mark.parametrize("name", ["cross_entropy"] + ELEMENTWISE)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_mask_over_a_leading_part_weighs_what_it_broadcasts_over(name, reduction, rng):
    """mask[T] means mask[T, B] with each step's weight repeated over the batch, for every loss
    (cross_entropy refused it while mse took it, though the docs promise it for all)."""
    pred, target = random_case(rng, name)
    steps = random_mask(rng, (T,))
    full = np.broadcast_to(steps[:, None], (T, B))
    got = getattr(losses, name)(pred, target, mask=steps, reduction=reduction)
    want = getattr(losses, name)(pred, target, mask=full.copy(), reduction=reduction)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


def test_a_cross_entropy_mask_that_is_no_leading_part_is_refused(rng):
    logits, targets = random_case(rng, "cross_entropy")
    with pytest.raises(ValueError, match=r"mask has shape \(3,\), expected targets' shape \(4, 3\) "
                                         r"or a leading part of it"):
        losses.cross_entropy(logits, targets, mask=np.ones(B))
    with pytest.raises(ValueError, match=r"mask has shape \(4, 3, 5\), expected targets' shape"):
        losses.cross_entropy(logits, targets, mask=np.ones((T, B, C)))
    with pytest.raises(TypeError, match="mask must be bool or numbers"):
        losses.cross_entropy(logits, targets, mask=np.array(["a"] * T))
