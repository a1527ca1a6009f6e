"""elman.slu: the Theano tutorial's Elman slot-filling network, against a NumPy transcription
of the tutorial's graph (recurrence, softmax, sentence NLL, SGD update, normalize)."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from elman import reference as ref
from elman.slu import ElmanSLU, contextwin

from conftest import numerical_gradient, rel_error

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "slot_filling.py"


def tutorial_probabilities(model, sentence):
    """p_y_given_x_sentence of the tutorial's theano.scan, in NumPy (float64)."""
    idxs = np.array(contextwin(sentence, model.cs))
    x = model.emb[idxs].reshape(idxs.shape[0], model.de * model.cs)
    h_tm1, s = model.h0, []
    for x_t in x:
        h_t = ref.sigmoid(x_t @ model.wx + h_tm1 @ model.wh + model.bh)
        s.append(ref.softmax(h_t @ model.w + model.b))
        h_tm1 = h_t
    return np.array(s)


def tutorial_nll(model, sentence, labels):
    """The tutorial's sentence_nll: -mean(log p[t, y_t])."""
    p = tutorial_probabilities(model, sentence)
    return -np.mean(np.log(p[np.arange(len(labels)), labels]))


def small_model(seed=0):
    model = ElmanSLU(nh=4, nc=3, ne=6, de=3, cs=3, seed=seed)
    rng = np.random.default_rng(seed)
    model.bh[:] = 0.3 * rng.standard_normal(model.nh)  # nonzero biases and h0, so they are tested
    model.b[:] = 0.3 * rng.standard_normal(model.nc)
    model.h0[:] = rng.uniform(0.2, 0.8, model.nh)
    return model


# --------------------------------------------------------------------------- #
# contextwin
# --------------------------------------------------------------------------- #

def test_contextwin_tutorial_examples():
    x = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    assert contextwin(x, 3) == [[-1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, -1]]
    assert contextwin(x, 7) == [[-1, -1, -1, 0, 1, 2, 3], [-1, -1, 0, 1, 2, 3, 4],
                                [-1, 0, 1, 2, 3, 4, -1], [0, 1, 2, 3, 4, -1, -1],
                                [1, 2, 3, 4, -1, -1, -1]]
    assert contextwin([5, 6], 1) == [[5], [6]]
    assert contextwin([], 5) == []


@pytest.mark.parametrize("win", [0, 2, -1, 3.0, True])
def test_contextwin_needs_an_odd_positive_window(win):
    with pytest.raises(ValueError, match="win must be an odd integer >= 1"):
        contextwin([1, 2], win)


# --------------------------------------------------------------------------- #
# parameters
# --------------------------------------------------------------------------- #

def test_parameters_follow_the_tutorials_layout_and_draws():
    nh, nc, ne, de, cs = 7, 5, 11, 4, 3
    model = ElmanSLU(nh, nc, ne, de, cs, seed=42)
    np.random.seed(42)  # the tutorial draws from numpy.random, in this order
    expected = [0.2 * np.random.uniform(-1.0, 1.0, shape)
                for shape in [(ne + 1, de), (de * cs, nh), (nh, nh), (nh, nc)]]
    for got, want in zip([model.emb, model.wx, model.wh, model.w], expected):
        np.testing.assert_array_equal(got, want)
    for zeros, size in [(model.bh, nh), (model.b, nc), (model.h0, nh)]:
        assert zeros.shape == (size,) and not zeros.any()
    assert [p is q for p, q in zip(model.params, [model.emb, model.wx, model.wh, model.w,
                                                  model.bh, model.b, model.h0])] == [True] * 7


def test_float32_model():
    model = ElmanSLU(4, 3, 6, 3, 3, seed=0, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in model.params)
    loss = model.train([1, 2, 3], [0, 1, 2], 0.1)
    assert np.isfinite(loss) and all(p.dtype == np.float32 for p in model.params)
    assert model.predict_proba([1, 2, 3]).dtype == np.float32


# --------------------------------------------------------------------------- #
# forward and gradients
# --------------------------------------------------------------------------- #

def test_forward_matches_the_tutorials_recurrence():
    model = small_model()
    sentence = [0, 5, 2, 2, 4, 1, 3]
    expected = tutorial_probabilities(model, sentence)
    np.testing.assert_allclose(model.predict_proba(sentence), expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(model.classify(sentence), expected.argmax(axis=1))
    # the tutorial's own call passes the context windows
    np.testing.assert_array_equal(model.classify(np.asarray(contextwin(sentence, 3)).astype("int32")),
                                  expected.argmax(axis=1))


def test_gradients_against_finite_differences():
    model = small_model(1)
    sentence, labels = np.array([3, 0, 4, 4, 1]), np.array([2, 0, 1, 1, 0])
    loss, grads = model.gradients(sentence, labels)
    assert loss == pytest.approx(tutorial_nll(model, sentence, labels), rel=1e-13)
    for name, grad in grads.items():
        param = getattr(model, name)
        saved = param.copy()

        def nll(value, param=param):
            param[...] = value
            return tutorial_nll(model, sentence, labels)

        numerical = numerical_gradient(nll, saved)
        param[...] = saved
        assert grad.shape == param.shape
        assert rel_error(grad, numerical) < 1e-8, name
    assert grads["emb"][model.ne].any()  # the padding row (index -1) is learnt too
    assert not grads["emb"][[2, 5]].any()  # words not in the sentence get no gradient


def test_train_is_one_sgd_step_then_normalize():
    model = small_model(2)
    sentence, labels = [1, 2, 3, 1], [0, 2, 2, 1]
    before = [p.copy() for p in model.params]
    arrays = list(model.params)
    loss, grads = model.gradients(sentence, labels)
    assert model.train(sentence, labels, 0.3) == loss
    expected = {name: value - 0.3 * grads[name]
                for name, value in zip(["emb", "wx", "wh", "w", "bh", "b", "h0"], before)}
    expected["emb"] /= np.sqrt((expected["emb"] ** 2).sum(axis=1))[:, None]
    for name in expected:
        np.testing.assert_allclose(getattr(model, name), expected[name], rtol=1e-14, atol=1e-15)
    assert all(p is q for p, q in zip(model.params, arrays))  # updated in place
    np.testing.assert_allclose(np.linalg.norm(model.emb, axis=1), 1, rtol=1e-14)


def test_training_learns_a_sentence():
    model = ElmanSLU(nh=8, nc=3, ne=5, de=4, cs=3, seed=3)
    sentence, labels = [0, 1, 2, 3, 4, 1], [0, 1, 2, 2, 0, 1]
    first = model.train(sentence, labels, 0.5)
    for _ in range(200):
        last = model.train(sentence, labels, 0.5)
    assert last < first / 5
    np.testing.assert_array_equal(model.classify(sentence), labels)


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("sentence,labels,error,message", [
    ([1, 6], [0, 0], ValueError, "sentence has word index 6; expected 0 <= index < ne = 6"),
    ([1, -1], [0, 0], ValueError, "sentence has word index -1"),
    ([1, 2], [0], ValueError, r"labels has shape \(1,\) .* expected 2 integer labels"),
    ([1, 2], [0, 3], ValueError, r"labels must lie in \[0, nc\) = \[0, 3\)"),
    ([1, 2], [0.0, 1.0], ValueError, "expected 2 integer labels"),
    ([], [], ValueError, "sentence is empty"),
    ([1.5, 2.0], [0, 1], TypeError, "integer word indices"),
    (np.zeros((2, 5), dtype=int), [0, 1], ValueError,
     r"expected word indices \(n,\) or context windows \(n, 3\)"),
])
def test_bad_input_is_named(sentence, labels, error, message):
    model = small_model()
    before = [p.copy() for p in model.params]
    with pytest.raises(error, match=message):
        model.train(sentence, labels, 0.1)
    for p, q in zip(model.params, before):
        np.testing.assert_array_equal(p, q)  # nothing was updated


def test_constructor_checks():
    with pytest.raises(ValueError, match="nh must be a positive integer"):
        ElmanSLU(0, 3, 5, 4, 3)
    with pytest.raises(ValueError, match="win must be an odd integer"):
        ElmanSLU(4, 3, 5, 4, 4)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        ElmanSLU(4, 3, 5, 4, 3, dtype=np.int32)


# --------------------------------------------------------------------------- #
# the example
# --------------------------------------------------------------------------- #

def test_slot_filling_example_reaches_a_high_f1():
    result = subprocess.run([sys.executable, str(EXAMPLE), "--train", "300", "--test", "100",
                             "--epochs", "4", "--seed", "0"],
                            capture_output=True, text=True, timeout=120, check=True)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("held-out token F1 = ")
    token = float(last.split("token F1 = ")[1].split(",")[0])
    chunk = float(last.split("chunk F1 = ")[1])
    assert token > 0.9 and chunk > 0.85, result.stdout
