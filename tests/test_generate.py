"""elman.generate.sample: feedback generation, deterministic per seed, temperature as documented."""

import numpy as np
import pytest

from elman.generate import iter_sample, next_token_distribution, sample
from elman.model import RNN
from elman.reference import softmax

V, H = 7, 12


def token_model(output_activation="identity", num_layers=1, seed=3):
    rnn = RNN(V, H, num_layers=num_layers, output_size=V, output_activation=output_activation,
              dtype="float64", seed=seed)
    for p in rnn.params.values():
        p *= 4  # sharper distributions than torch's small initial weights give
    return rnn


def reference_sample(rnn, start, length, temperature, seed):
    """The same generation written plainly: rerun the whole sequence through forward every step."""
    rng = np.random.default_rng(seed)
    inputs = list(start)
    tokens = []
    for _ in range(length):
        x = np.eye(V)[inputs][:, None, :]  # [t, 1, V] one-hot rows of everything so far
        out, _ = rnn.forward(x)
        probs = next_token_distribution(out[-1, 0], rnn.output_activation, temperature)
        cumulative = np.cumsum(probs)
        token = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), V - 1)
        tokens.append(token)
        inputs.append(token)
    return tokens


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.0])
def test_matches_generation_by_whole_forward_passes(num_layers, temperature):
    rnn = token_model(num_layers=num_layers)
    got = sample(rnn, [2, 5, 1], 15, temperature=temperature, seed=11)
    assert got.dtype == np.int64 and got.shape == (15,)
    np.testing.assert_array_equal(got, reference_sample(rnn, [2, 5, 1], 15, temperature, 11))


def test_same_seed_same_tokens_other_seed_other_tokens():
    rnn = token_model()
    first = sample(rnn, 0, 40, seed=123)
    np.testing.assert_array_equal(first, sample(rnn, 0, 40, seed=123))
    assert not np.array_equal(first, sample(rnn, 0, 40, seed=124))
    generator = np.random.default_rng(123)  # a Generator works like its seed
    np.testing.assert_array_equal(first, sample(rnn, 0, 40, seed=generator))


def constant_model(logits, output_activation="identity"):
    """A model whose output ignores its input and state: tokens are drawn iid from one distribution."""
    rnn = RNN(V, H, output_size=V, output_activation=output_activation, dtype="float64", seed=0)
    for name in ("W_xh_l0", "W_hh_l0", "b_h_l0", "W_hy"):
        rnn.params[name][...] = 0
    rnn.params["b_y"][...] = logits
    return rnn


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_token_frequencies_follow_softmax_of_logits_over_temperature(temperature):
    logits = np.array([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0])
    tokens = sample(constant_model(logits), 0, 20_000, temperature=temperature, seed=7)
    frequencies = np.bincount(tokens, minlength=V) / len(tokens)
    expected = softmax(logits / temperature)
    # binomial standard error is at most sqrt(0.25 / 20000) = 0.0035; allow four of them
    np.testing.assert_allclose(frequencies, expected, atol=0.014)


def test_softmax_output_layer_is_sampled_like_its_logits():
    logits = np.array([1.5, -0.5, 0.3, 0.0, 2.0, -2.0, 0.7])
    for temperature in (0.3, 1.0, 1.7):
        from_probs = sample(constant_model(logits, "softmax"), 0, 300, temperature=temperature, seed=5)
        from_logits = sample(constant_model(logits), 0, 300, temperature=temperature, seed=5)
        np.testing.assert_array_equal(from_probs, from_logits)


def test_temperature_zero_is_greedy_and_the_limit_of_small_temperatures():
    rnn = token_model()
    greedy = sample(rnn, 4, 30, temperature=0)
    np.testing.assert_array_equal(greedy, sample(rnn, 4, 30, temperature=1e-6, seed=99))
    probs = next_token_distribution([0.0, 3.0, 3.0, 1.0], "identity", 0)
    np.testing.assert_array_equal(probs, [0, 1, 0, 0])  # ties go to the lowest index


def test_start_can_be_an_index_indices_or_input_vectors():
    rnn = token_model()
    eye = np.eye(V)
    by_index = sample(rnn, 3, 20, seed=0)
    np.testing.assert_array_equal(by_index, sample(rnn, [3], 20, seed=0))
    np.testing.assert_array_equal(by_index, sample(rnn, eye[3], 20, seed=0))
    by_indices = sample(rnn, [6, 0, 3], 20, seed=0)
    np.testing.assert_array_equal(by_indices, sample(rnn, eye[[6, 0, 3]], 20, seed=0))
    assert sample(rnn, 3, 0, seed=0).shape == (0,)


def test_h0_is_the_state_before_the_start():
    rnn = token_model(num_layers=2)
    h0 = np.random.default_rng(0).standard_normal((2, H))
    with_h0 = sample(rnn, 1, 25, temperature=0, h0=h0)
    assert not np.array_equal(with_h0, sample(rnn, 1, 25, temperature=0))
    np.testing.assert_array_equal(with_h0, sample(rnn, 1, 25, temperature=0, h0=h0[:, None, :]))
    # the same as running the start from h0 with forward and continuing greedily
    out, _ = rnn.forward(np.eye(V)[[1]][:, None, :], h0[:, None, :])
    assert with_h0[0] == np.argmax(out[-1, 0])


def test_sampling_leaves_a_pending_backward_alone():
    rnn = token_model()
    x = np.eye(V)[[1, 2, 3]][:, None, :]
    out, _ = rnn.forward(x)
    expected_dx = rnn.backward(np.ones_like(out)).copy()
    rnn.forward(x)
    sample(rnn, 0, 10, seed=0)
    np.testing.assert_array_equal(rnn.backward(np.ones_like(out)), expected_dx)


def test_bad_arguments():
    rnn = token_model()
    for temperature in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            sample(rnn, 0, 5, temperature=temperature)
    with pytest.raises(ValueError, match="length must be an int >= 0"):
        sample(rnn, 0, -1)
    for length in (2**63, 2**70):  # more tokens than an array holds: not NumPy's OverflowError
        with pytest.raises(ValueError, match="length must be at most"):
            sample(rnn, 0, length)
    with pytest.raises(ValueError, match=r"start indices must lie in \[0, 7\)"):
        sample(rnn, 7, 5)
    with pytest.raises(ValueError, match="start is empty"):
        sample(rnn, [], 5)
    with pytest.raises(ValueError, match="start must be a token index or a 1-d sequence"):
        sample(rnn, [[1, 2]], 5)
    with pytest.raises(ValueError, match=r"start vectors must have shape \(D,\) or \(T0, D\) with D = 7"):
        sample(rnn, np.ones(3), 5)
    with pytest.raises(ValueError, match="h0 has shape"):
        sample(rnn, 0, 5, h0=np.zeros((2, H)))
    with pytest.raises(ValueError, match="output_size None, expected input_size = 7"):
        sample(RNN(V, H, seed=0), 0, 5)
    with pytest.raises(ValueError, match="output_activation must be 'identity' or 'softmax', got 'sigmoid'"):
        sample(RNN(V, H, output_size=V, output_activation="sigmoid", seed=0), 0, 5)
    with pytest.raises(ValueError, match="sample needs a unidirectional RNN"):
        sample(RNN(V, H, output_size=V, bidirectional=True, seed=0), 0, 5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", ["W_hh_l0", "b_y"])
def test_a_model_with_non_finite_weights_raises_instead_of_giving_tokens(bad, name):
    rnn = token_model()
    rnn.params[name].flat[3] = bad
    with pytest.raises(ValueError, match=f"rnn.params\\['{name}'\\] holds NaN or infinity"):
        sample(rnn, 0, 5)
    with pytest.raises(ValueError, match="holds NaN or infinity"):
        iter_sample(rnn, 0, 5)  # checked when called, before the first token


def test_outputs_that_overflow_raise():
    """Finite weights whose logits overflow to infinity: no distribution, so an error."""
    rnn = RNN(V, H, output_size=V, activation="identity", dtype="float32", seed=0)
    rnn.params["W_hh_l0"][...] = 1e30 * np.eye(H)
    rnn.params["W_xh_l0"][...] = 1e30
    with pytest.raises(ValueError, match="the model's output before generated token"):
        sample(rnn, 0, 5)


def test_iter_sample_yields_the_tokens_of_sample_one_at_a_time():
    rnn = token_model(num_layers=2)
    tokens = iter_sample(rnn, [1, 2], 40, temperature=0.7, seed=5)
    first = next(tokens)
    assert isinstance(first, int)
    assert [first, *tokens] == sample(rnn, [1, 2], 40, temperature=0.7, seed=5).tolist()
    assert list(iter_sample(rnn, 0, 0)) == []
    with pytest.raises(ValueError, match="length must be an int >= 0"):
        iter_sample(rnn, 0, -1)  # checked at once, not at the first next()


@pytest.mark.parametrize("seed, kind", [(-1, ValueError), (1.5, TypeError), ("x", TypeError)])
def test_a_bad_seed_names_the_argument(seed, kind):
    with pytest.raises(kind, match=f"seed must be None, an int >= 0.*got {seed!r}"):
        sample(token_model(), 0, 3, seed=seed)
    with pytest.raises(kind, match=f"seed must be None, an int >= 0.*got {seed!r}"):
        RNN(V, H, seed=seed)
