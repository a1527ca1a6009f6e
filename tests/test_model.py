"""elman.RNN: shapes and layouts, lengths, the learned initial state, the output layer,
initialisation, whole-model finite-difference gradients, streaming, save/load, bad input."""

import io
import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from elman import reference as ref
from elman.model import FORMAT_VERSION, RNN

from conftest import numerical_gradient, rel_error

T, B, D, H = 5, 3, 4, 6


def model(input_size=D, hidden_size=H, **options):
    """An RNN in float64 with a fixed seed unless told otherwise."""
    return RNN(input_size, hidden_size, **{"dtype": "float64", "seed": 7, **options})


def assert_close(actual, desired):
    """Equal up to the last bits: the kernels' GEMMs may round differently at other addresses."""
    np.testing.assert_allclose(actual, desired, rtol=1e-13, atol=1e-15)


def randomize(rnn, rng, scale=0.5):
    """Non-zero values for every parameter (a learned h0 starts at 0, which would hide bugs)."""
    for value in rnn.params.values():
        value[...] = scale * rng.standard_normal(value.shape)


# --------------------------------------------------------------------------- #
# shapes and layouts
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("output_size", [None, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shapes_and_dtypes(rng, num_layers, bidirectional, output_size, dtype):
    rnn = model(num_layers=num_layers, bidirectional=bidirectional, output_size=output_size,
                dtype=dtype)
    dirs = 2 if bidirectional else 1
    out, h_n = rnn(rng.standard_normal((T, B, D)))
    assert out.shape == (T, B, output_size or dirs * H)
    assert h_n.shape == (num_layers * dirs, B, H)
    dx = rnn.backward(rng.standard_normal(out.shape), rng.standard_normal(h_n.shape))
    assert dx.shape == (T, B, D) and rnn.dh0.shape == h_n.shape
    assert {a.dtype for a in (out, h_n, dx, rnn.dh0)} == {np.dtype(dtype)}
    assert set(rnn.grads) == set(rnn.params)
    for name, value in rnn.params.items():
        assert value.dtype == np.dtype(dtype) and rnn.grads[name].shape == value.shape, name


def test_batch_first_is_a_transpose(rng):
    x = rng.standard_normal((T, B, D))
    d_out = rng.standard_normal((T, B, 2 * H))
    d_h_n = rng.standard_normal((4, B, H))
    time_major, batch_first = model(num_layers=2, bidirectional=True), model(
        num_layers=2, bidirectional=True, batch_first=True)
    out, h_n = time_major(x, lengths=[5, 2, 4])
    out_bf, h_n_bf = batch_first(x.transpose(1, 0, 2), lengths=[5, 2, 4])
    assert_close(out_bf, out.transpose(1, 0, 2))
    assert_close(h_n_bf, h_n)  # h_n is never batch-first, as in torch
    dx = time_major.backward(d_out, d_h_n)
    dx_bf = batch_first.backward(d_out.transpose(1, 0, 2), d_h_n)
    assert_close(dx_bf, dx.transpose(1, 0, 2))
    for name in time_major.grads:
        assert_close(batch_first.grads[name], time_major.grads[name])


@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_is_a_batch_of_one(rng, batch_first):
    rnn = model(num_layers=2, bidirectional=True, output_size=3, batch_first=batch_first)
    x = rng.standard_normal((T, D))
    h0 = rng.standard_normal((4, H))
    out, h_n = rnn(x, h0)
    assert out.shape == (T, 3) and h_n.shape == (4, H)
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx = rnn.backward(d_out, d_h_n)
    grads, dh0 = {k: v.copy() for k, v in rnn.grads.items()}, rnn.dh0
    assert dx.shape == (T, D) and dh0.shape == (4, H)

    one = x[None] if batch_first else x[:, None]  # the same sequence as a batch of one
    out1, h_n1 = rnn(one, h0[:, None])
    assert_close(out1[0] if batch_first else out1[:, 0], out)
    assert_close(h_n1[:, 0], h_n)
    d_out1 = d_out[None] if batch_first else d_out[:, None]
    dx1 = rnn.backward(d_out1, d_h_n[:, None])
    assert_close(dx1[0] if batch_first else dx1[:, 0], dx)
    assert_close(rnn.dh0[:, 0], dh0)
    for name in grads:
        assert_close(rnn.grads[name], grads[name])


def test_unbatched_rejects_lengths(rng):
    with pytest.raises(ValueError, match="lengths needs a batch"):
        model()(rng.standard_normal((T, D)), lengths=[3])


# --------------------------------------------------------------------------- #
# lengths: each sequence as if it were alone
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("output_size", [None, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lengths_equal_each_sequence_alone(rng, bidirectional, output_size):
    """out[:n, b] and h_n[:, b] equal running sequence b cut to its length on its own (so the
    reverse direction starts at its own end); out past the end is 0, even with an output layer."""
    rnn = model(num_layers=2, bidirectional=bidirectional, output_size=output_size,
                output_activation="sigmoid" if output_size else "identity")
    randomize(rnn, rng)
    lengths = [5, 2, 0]
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((rnn.num_layers * rnn.num_directions, B, H))
    out, h_n = rnn(x, h0, lengths=lengths)
    for b, n in enumerate(lengths):
        assert np.all(out[n:, b] == 0)
        if n == 0:
            np.testing.assert_array_equal(h_n[:, b], h0[:, b])
            continue
        alone_out, alone_h_n = rnn(x[:n, b], h0[:, b])
        assert_close(out[:n, b], alone_out)
        assert_close(h_n[:, b], alone_h_n)


def test_lengths_gradients_equal_each_sequence_alone(rng):
    rnn = model(num_layers=2, bidirectional=True, output_size=2, learn_h0=True)
    randomize(rnn, rng)
    lengths = [4, 5, 1]
    x = rng.standard_normal((T, B, D))
    out, h_n = rnn(x, lengths=lengths)
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx = rnn.backward(d_out, d_h_n)
    grads = {k: v.copy() for k, v in rnn.grads.items()}
    summed = {k: np.zeros_like(v) for k, v in grads.items()}
    for b, n in enumerate(lengths):
        rnn(x[:n, b])
        dx_b = rnn.backward(d_out[:n, b], d_h_n[:, b])
        np.testing.assert_allclose(dx[:n, b], dx_b, rtol=1e-12, atol=1e-14)
        assert np.all(dx[n:, b] == 0)
        for k in summed:
            summed[k] += rnn.grads[k]
    for k in grads:
        assert rel_error(grads[k], summed[k]) < 1e-12, k


def test_lengths_accept_lists_and_reject_bad_values(rng):
    rnn = model()
    x = rng.standard_normal((T, B, D))
    out_list, _ = rnn(x, lengths=[5, 3, 1])
    out_arr, _ = rnn(x, lengths=np.array([5, 3, 1], dtype=np.uint8))
    assert_close(out_list, out_arr)
    with pytest.raises(ValueError, match=r"lengths must lie in 0\.\.T = 0\.\.5, got lengths\[1\] = 6"):
        rnn(x, lengths=[5, 6, 1])
    with pytest.raises(ValueError, match=r"lengths has shape \(2,\), expected \(B,\) = \(3,\)"):
        rnn(x, lengths=[5, 3])
    with pytest.raises(TypeError, match="lengths must hold integers"):
        rnn(x, lengths=[5.0, 3.0, 1.0])


# --------------------------------------------------------------------------- #
# the output layer and the learned initial state
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("output_activation", list(ref.OUTPUT_ACTIVATIONS))
def test_output_layer_reads_the_last_layer(rng, output_activation):
    with_output = model(num_layers=2, bidirectional=True, output_size=3,
                        output_activation=output_activation)
    without = model(num_layers=2, bidirectional=True)
    for name, value in without.params.items():
        value[...] = with_output.params[name]
    x = rng.standard_normal((T, B, D))
    ys, h_n = with_output(x)
    hs, h_n_plain = without(x)
    want = ref.output_forward(hs, with_output.params["W_hy"], with_output.params["b_y"],
                              output_activation)
    assert_close(ys, want)
    assert_close(h_n, h_n_plain)


def test_learned_h0_is_broadcast_and_its_gradient_summed(rng):
    rnn = model(num_layers=2, bidirectional=True, learn_h0=True)
    assert np.all(rnn.params["h0"] == 0)  # as in seed 002
    randomize(rnn, rng)
    x = rng.standard_normal((T, B, D))
    h0 = np.broadcast_to(rnn.params["h0"][:, None], (4, B, H)).copy()
    out, h_n = rnn(x)
    d_out = rng.standard_normal(out.shape)
    rnn.backward(d_out)
    np.testing.assert_allclose(rnn.grads["h0"], rnn.dh0.sum(axis=1), rtol=1e-14)
    learned = {k: v.copy() for k, v in rnn.grads.items()}
    out_given, h_n_given = rnn(x, h0)  # the same state passed explicitly
    assert_close(out_given, out)
    assert_close(h_n_given, h_n)
    rnn.backward(d_out)
    assert np.all(rnn.grads["h0"] == 0)  # not used this time
    for name in learned:
        if name != "h0":
            assert_close(rnn.grads[name], learned[name])


def test_grads_are_overwritten_in_place_and_d_out_none_is_zero(rng):
    rnn = model(output_size=2)
    arrays = {k: id(v) for k, v in rnn.grads.items()}
    x = rng.standard_normal((T, B, D))
    out, h_n = rnn(x)
    d_h_n = rng.standard_normal(h_n.shape)
    dx_none = rnn.backward(None, d_h_n)
    first = {k: v.copy() for k, v in rnn.grads.items()}
    dx_zero = rnn.backward(np.zeros(out.shape), d_h_n)
    assert_close(dx_none, dx_zero)
    for name in first:
        assert_close(rnn.grads[name], first[name])
        assert id(rnn.grads[name]) == arrays[name]
    assert np.all(rnn.grads["W_hy"] == 0) and np.any(rnn.grads["W_hh_l0"] != 0)


def test_params_are_live(rng):
    rnn = model()
    x = rng.standard_normal((T, B, D))
    before, _ = rnn(x)
    rnn.params["W_hh_l0"] *= 2  # in place, as an optimizer does
    after, _ = rnn(x)
    assert not np.allclose(before, after)
    rnn.params["W_hh_l0"] = np.zeros((H, H + 1))
    with pytest.raises(ValueError, match=r"rnn.params\['W_hh_l0'\] must be a float64 array of shape \(6, 6\)"):
        rnn(x)


def test_out_is_read_only_and_inputs_untouched(rng):
    rnn = model(num_layers=2, bidirectional=True, learn_h0=True)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((4, B, H))
    lengths = np.array([5, 1, 3])
    copies = [a.copy() for a in (x, h0, lengths)]
    out, h_n = rnn(x, h0, lengths)
    with pytest.raises(ValueError, match="read-only"):
        out[0] = 1
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    grad_copies = [d_out.copy(), d_h_n.copy()]
    rnn.backward(d_out, d_h_n)
    for a, c in zip((x, h0, lengths, d_out, d_h_n), copies + grad_copies):
        np.testing.assert_array_equal(a, c)


# --------------------------------------------------------------------------- #
# initialisation
# --------------------------------------------------------------------------- #

def test_uniform_init_statistics():
    rnn = RNN(200, 300, num_layers=2, bidirectional=True, output_size=100, seed=0)
    for name, value in rnn.params.items():
        fan_in = 600 if name in ("W_hy", "b_y") else 300
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(value).max() <= bound, name
        if value.size >= 10_000:  # a uniform's mean 0 and std bound/sqrt(3), within 5 sigma
            n = value.size
            assert abs(value.mean()) < 5 * bound / np.sqrt(3 * n), name
            assert abs(value.std() - bound / np.sqrt(3)) < 5 * bound / np.sqrt(n), name


def test_seed_decides_the_init():
    a, b, c = (RNN(3, 5, num_layers=2, seed=s, dtype="float64") for s in (1, 1, 2))
    single = RNN(3, 5, num_layers=2, seed=1, dtype=np.float32)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
        assert not np.array_equal(a.params[name], c.params[name])
        np.testing.assert_array_equal(single.params[name], a.params[name].astype(np.float32))


def test_orthogonal_recurrent_init():
    rnn = RNN(4, 64, num_layers=2, bidirectional=True, recurrent_init="orthogonal", seed=3,
              dtype="float64")
    recurrent = [name for name in rnn.params if name.startswith("W_hh")]
    assert len(recurrent) == 4
    for name in recurrent:
        W = rnn.params[name]
        np.testing.assert_allclose(W @ W.T, np.eye(64), atol=1e-12)
    assert not np.array_equal(rnn.params["W_hh_l0"], rnn.params["W_hh_l1"])
    bound = 1 / np.sqrt(64)
    assert all(np.abs(rnn.params[n]).max() <= bound for n in rnn.params if n not in recurrent)


# --------------------------------------------------------------------------- #
# finite differences of the whole model, float64
# --------------------------------------------------------------------------- #

FD_CASES = {
    "one_layer": dict(),
    "bi_2layers_lengths_output_h0": dict(num_layers=2, bidirectional=True, output_size=3,
                                         output_activation="softmax", learn_h0=True,
                                         lengths=[4, 2, 0]),
    "sigmoid_3layers_batch_first": dict(num_layers=3, activation="sigmoid", batch_first=True,
                                        lengths=[1, 4, 3]),
    "bi_identity_output_sigmoid": dict(bidirectional=True, activation="identity", output_size=2,
                                       output_activation="sigmoid"),
    "unbatched_bi_output": dict(bidirectional=True, output_size=2, num_layers=2, unbatched=True),
}


@pytest.mark.parametrize("case", list(FD_CASES))
def test_finite_difference_gradients(rng, case):
    """Every parameter, x and h0 against central differences of
    L = sum(out * d_out) + sum(h_n * d_h_n)."""
    options = dict(FD_CASES[case])
    lengths, unbatched = options.pop("lengths", None), options.pop("unbatched", False)
    rnn = RNN(2, 3, dtype="float64", seed=1, **options)
    randomize(rnn, rng, scale=0.6)
    LD = rnn.num_layers * rnn.num_directions
    Tn, Bn = 4, 3
    x = rng.standard_normal((Tn, 2) if unbatched else ((Bn, Tn, 2) if rnn.batch_first else (Tn, Bn, 2)))
    given_h0 = None if rnn.learn_h0 else rng.standard_normal((LD, 3) if unbatched else (LD, Bn, 3))
    out, h_n = rnn(x, given_h0, lengths)
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx = rnn.backward(d_out, d_h_n)
    analytic = {name: g.copy() for name, g in rnn.grads.items()}
    dh0 = rnn.dh0

    def loss(x_, h0_):
        o, h = rnn(x_, h0_, lengths)
        return np.sum(o * d_out) + np.sum(h * d_h_n)

    for name in rnn.params:
        saved = rnn.params[name].copy()

        def with_param(v, name=name):
            rnn.params[name][...] = v
            return loss(x, given_h0)

        numeric = numerical_gradient(with_param, saved)
        rnn.params[name][...] = saved
        assert rel_error(analytic[name], numeric) < 1e-8, f"d{name}: {rel_error(analytic[name], numeric):.3g}"
    assert rel_error(dx, numerical_gradient(lambda v: loss(v, given_h0), x)) < 1e-8, "dx"
    if given_h0 is not None:
        assert rel_error(dh0, numerical_gradient(lambda v: loss(x, v), given_h0)) < 1e-8, "dh0"


def test_two_rnns_chain_through_dh0(rng):
    """An encoder's h_n as a decoder's h0: decoder.dh0 fed to encoder.backward as d_h_n gives the
    encoder's gradients of the decoder's loss."""
    encoder, decoder = model(num_layers=2, seed=1), model(num_layers=2, output_size=2, seed=2)
    x, y_in = rng.standard_normal((T, B, D)), rng.standard_normal((3, B, D))
    d_ys = rng.standard_normal((3, B, 2))

    def loss():
        _, h = encoder(x)
        ys, _ = decoder(y_in, h)
        return np.sum(ys * d_ys)

    loss()
    decoder.backward(d_ys)
    encoder.backward(None, decoder.dh0)
    name = "W_hh_l0"
    saved = encoder.params[name].copy()

    def with_param(v):
        encoder.params[name][...] = v
        return loss()

    numeric = numerical_gradient(with_param, saved)
    encoder.params[name][...] = saved
    assert rel_error(encoder.grads[name], numeric) < 1e-8


# --------------------------------------------------------------------------- #
# streaming
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("output_size", [None, 3])
def test_stream_equals_forward(rng, output_size):
    rnn = model(num_layers=3, output_size=output_size, learn_h0=True)
    randomize(rnn, rng)
    x = rng.standard_normal((T, B, D))
    out, h_n = rnn(x)
    stream = rnn.stream(batch_size=B)
    for t in range(T):
        assert_close(stream.step(x[t]), out[t])
    assert_close(stream.state, h_n)
    stream.reset()
    np.testing.assert_array_equal(stream.state, np.broadcast_to(rnn.params["h0"][:, None], h_n.shape))
    h0 = rng.standard_normal((3, H))  # one start state for every sequence
    out, h_n = rnn(x, np.broadcast_to(h0[:, None], (3, B, H)))
    stream = rnn.stream(batch_size=B, h0=h0)
    for t in range(T):
        assert_close(stream.step(x[t]), out[t])


def test_stream_of_one_sequence(rng):
    rnn = model(output_size=2, dtype="float32")
    x = rng.standard_normal((T, D)).astype(np.float32)
    out, _ = rnn(x)
    stream = rnn.stream()
    steps = [stream.step(x_t).copy() for x_t in x]
    assert steps[0].shape == (2,)
    np.testing.assert_allclose(np.array(steps), out, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="read-only"):
        stream.step(x[0])[0] = 1


def test_stream_allocates_nothing_per_step(rng):
    """NumPy reports its allocations to tracemalloc: 20 steps must not add up to one array."""
    rnn = RNN(16, 128, num_layers=2, output_size=32, seed=0)
    stream = rnn.stream(batch_size=32)
    x = rng.standard_normal((32, 16)).astype(np.float32)
    stream.step(x)  # warm up
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            stream.step(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    smallest_array = 32 * 32 * 4  # bytes of y_t[B, O] in float32
    # Any array a step allocated would lift the peak by at least this much. Below it: Python's
    # own small objects of the calls (about 2.4 KB at the peak on Python 3.13 under pytest).
    assert peak - start < smallest_array


def test_stream_errors(rng):
    with pytest.raises(ValueError, match="needs a unidirectional RNN"):
        model(bidirectional=True).stream()
    stream = model(num_layers=2).stream(batch_size=2)
    with pytest.raises(ValueError, match=r"x_t has shape \(3, 4\), expected \(B, D\) = \(2, 4\)"):
        stream.step(np.zeros((3, D)))
    with pytest.raises(ValueError, match=r"h0 has shape \(2, 3, 6\), expected \(L, B, H\)"):
        model(num_layers=2).stream(batch_size=2, h0=np.zeros((2, 3, H)))


# --------------------------------------------------------------------------- #
# save and load
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("options", [
    dict(),
    dict(num_layers=2, bidirectional=True, output_size=3, output_activation="softmax",
         learn_h0=True, batch_first=True, activation="relu", dtype="float32"),
])
def test_save_load_round_trip(rng, tmp_path, options):
    rnn = model(**options)
    randomize(rnn, rng)
    path = tmp_path / "model.npz"
    rnn.save(path)
    loaded = RNN.load(path)
    assert repr(loaded) == repr(rnn) and loaded.config() == rnn.config()
    for name, value in rnn.params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value)
    x = rng.standard_normal((T, B, D))
    assert_close(loaded(x)[0], rnn(x)[0])
    buffer = io.BytesIO()  # file objects work too
    rnn.save(buffer)
    buffer.seek(0)
    assert RNN.load(buffer).config() == rnn.config()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary left


def saved_arrays(rnn):
    buffer = io.BytesIO()
    rnn.save(buffer)
    with np.load(io.BytesIO(buffer.getvalue())) as f:
        return {k: f[k] for k in f.files}


def write(path, arrays):
    np.savez(path, **arrays)
    return path


def config_with(rnn, **changes):
    return np.array(json.dumps({**rnn.config(), **changes}))


@pytest.mark.parametrize("change, match", [
    (lambda a, r: a.pop("format_version"), "lacks 'format_version' or 'config'"),
    (lambda a, r: a.update(format_version=np.array(FORMAT_VERSION + 1)), "has format_version 2"),
    (lambda a, r: a.update(format_version=np.array(1.0)), "format_version must be an integer"),
    (lambda a, r: a.update(config=np.array("{not json")), "config is not valid JSON"),
    (lambda a, r: a.update(config=np.array("[1, 2]")), "config must have exactly the keys"),
    (lambda a, r: a.update(config=config_with(r, extra=1)), "config must have exactly the keys"),
    (lambda a, r: a.update(config=config_with(r, hidden_size="6")), "invalid config .*hidden_size must be an int"),
    (lambda a, r: a.update(config=config_with(r, hidden_size=0)), "invalid config .*hidden_size must be a positive integer \\(at least 1\\)"),
    (lambda a, r: a.update(config=config_with(r, activation="gelu")), "invalid config .*activation must be one of"),
    (lambda a, r: a.update(config=config_with(r, dtype="float16")), "invalid config .*dtype must be"),
    (lambda a, r: a.update(config=config_with(r, hidden_size=10**12)), "parameter 'W_xh_l0' is a float64 array of shape \\(6, 4\\), expected"),
    (lambda a, r: a.pop("W_hh_l0"), "the parameter 'W_hh_l0' is missing"),
    (lambda a, r: a.update(W_hh_l0=np.zeros((H, H + 1))), "parameter 'W_hh_l0' is a float64 array of shape \\(6, 7\\)"),
    (lambda a, r: a.update(W_hh_l0=np.zeros((H, H), np.float32)), "parameter 'W_hh_l0' is a float32 array"),
    (lambda a, r: a.update(W_hy=np.zeros((2, H))), r"unexpected arrays \['W_hy'\]"),
    (lambda a, r: a.update(evil=np.array([{"a": 1}], dtype=object)), r"unexpected arrays \['evil'\]"),
    (lambda a, r: a.update(W_hh_l0=np.array([{"a": 1}] * H * H, dtype=object).reshape(H, H)),
     r"parameter 'W_hh_l0' is a object array of shape \(6, 6\), expected float64"),
    (lambda a, r: a.update(config=np.array({"a": 1}, dtype=object)), "config must be a JSON string"),
    (lambda a, r: a.update(config=np.array("x" * (1 << 17))), "config must be a JSON string of at most 65536"),
    (lambda a, r: a.update(config=np.array("[" * 20_000 + "]" * 20_000)), "config is not an elman config: its JSON is nested too deeply"),
    (lambda a, r: a.update(config=np.array('{"input_size": ' + "9" * 5000 + "}")), "config is not valid JSON .*digits"),
])
def test_load_rejects_bad_files(tmp_path, change, match):
    rnn = model()
    arrays = saved_arrays(rnn)
    change(arrays, rnn)
    path = write(tmp_path / "bad.npz", arrays)
    with pytest.raises(ValueError, match=match) as caught:
        RNN.load(path)
    assert str(caught.value).startswith(str(path))  # every error names the file


def zip_bomb(path, rnn, name, shape):
    """rnn's file with member name declaring shape (float64 zeros, deflated: tiny on disk)."""
    import zipfile

    arrays = saved_arrays(rnn)
    del arrays[name]
    np.savez(path, **arrays)
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name + ".npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            chunk = bytes(1 << 20)
            for _ in range(int(np.prod(shape)) * 8 >> 20):
                member.write(chunk)


def test_load_checks_each_header_before_reading_its_data(tmp_path):
    """A member declaring 128 MB of zeros (a few hundred kB on disk) where the config says a
    [6, 6] array: refused from its header, without decompressing or allocating it."""
    rnn = model()
    path = tmp_path / "bomb.npz"
    zip_bomb(path, rnn, "W_hh_l0", (4096, 4096))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"parameter 'W_hh_l0' is a float64 array of shape "
                                             r"\(4096, 4096\), expected float64 of shape \(6, 6\)"):
            RNN.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated to refuse the file"


def test_load_rejects_foreign_files(tmp_path):
    foreign = write(tmp_path / "other.npz", {"weights": np.ones(3)})
    with pytest.raises(ValueError, match="not an elman.RNN file"):
        RNN.load(foreign)
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match="holds a single array"):
        RNN.load(tmp_path / "single.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="is not a readable .npz file written by elman.RNN.save"):
        RNN.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        RNN.load(tmp_path / "missing.npz")


def test_load_truncated_or_corrupted_never_misloads(rng, tmp_path):
    """Every truncation, and a flipped byte at many offsets: a ValueError, or (for bytes no check
    covers, such as zip timestamps) exactly the original model; never anything else."""
    rnn = model(num_layers=2, output_size=2)
    randomize(rnn, rng)
    buffer = io.BytesIO()
    rnn.save(buffer)
    data = buffer.getvalue()
    damaged = [data[:n] for n in range(0, len(data), 97)]
    for offset in range(0, len(data), 13):
        flipped = bytearray(data)
        flipped[offset] ^= 0x5A
        damaged.append(bytes(flipped))
    for i, blob in enumerate(damaged):
        path = tmp_path / f"damaged{i}.npz"
        path.write_bytes(blob)
        try:
            loaded = RNN.load(path)
        except ValueError:
            continue
        assert loaded.config() == rnn.config()
        for name, value in rnn.params.items():
            np.testing.assert_array_equal(loaded.params[name], value)


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(input_size=0), ValueError, "input_size must be a positive integer \\(at least 1\\)"),
    (dict(hidden_size=2.5), TypeError, "hidden_size must be an int"),
    (dict(num_layers=True), TypeError, "num_layers must be an int"),
    (dict(activation="gelu"), ValueError, "activation must be one of 'tanh'"),
    (dict(output_activation="softmax"), ValueError, "needs an output layer: give output_size"),
    (dict(output_size=2, output_activation="tanh"), ValueError, "output_activation must be one of"),
    (dict(bidirectional=1), TypeError, "bidirectional must be True or False"),
    (dict(dtype="float16"), ValueError, "dtype must be 'float32' or 'float64'"),
    (dict(dtype="nonsense"), ValueError, "dtype must be 'float32' or 'float64'"),
    (dict(recurrent_init="xavier"), ValueError, "recurrent_init must be one of"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        RNN(args.pop("input_size"), args.pop("hidden_size"), **args)


def test_bad_forward_and_backward_input(rng):
    rnn = model(num_layers=2, bidirectional=True, output_size=3)
    x = rng.standard_normal((T, B, D))
    with pytest.raises(RuntimeError, match="backward\\(\\) needs a forward\\(\\) first"):
        rnn.backward(np.zeros((T, B, 3)))
    with pytest.raises(ValueError, match=r"x must have 3 dimensions \(T, B, D\), or 2"):
        rnn(x[None])
    with pytest.raises(ValueError, match="5 features on its last axis, expected input_size = 4"):
        rnn(rng.standard_normal((T, B, 5)))
    with pytest.raises(TypeError, match="x must hold real numbers"):
        rnn(x.astype(complex))
    with pytest.raises(ValueError, match=r"h0 has shape \(2, 3, 6\), expected \(num_layers\*dirs, B, H\) = \(4, 3, 6\)"):
        rnn(x, np.zeros((2, B, H)))
    out, h_n = rnn(x)
    with pytest.raises(ValueError, match=r"d_out has shape \(5, 3, 12\), expected out's shape = \(5, 3, 3\)"):
        rnn.backward(np.zeros((T, B, 2 * H)))
    with pytest.raises(ValueError, match=r"d_h_n has shape \(4, 6\), expected h_n's shape"):
        rnn.backward(np.zeros(out.shape), np.zeros((4, H)))


@pytest.mark.parametrize("x, error, match", [
    (None, TypeError, "x must be an array of real numbers, got None"),
    ({"a": 1}, TypeError, "x must be an array of real numbers, got dict"),
    ([[1.0, 2.0], [3.0]], ValueError, "x must be an array of real numbers: .*inhomogeneous"),
])
def test_what_is_not_an_array_is_named(x, error, match):
    """RNN(4, 5)(None) said "got dtype object"."""
    with pytest.raises(error, match=match) as caught:
        model()(x)
    assert "dtype object" not in str(caught.value)


@pytest.mark.parametrize("replacement, got", [
    (np.zeros((H, D)), r"a float64 array of shape \(6, 4\)"),
    (np.zeros((H, H), np.float32), r"a float32 array of shape \(6, 6\)"),
    ([[0.0] * H] * H, "list"),
    (None, "nothing"),
])
def test_a_replaced_gradient_array_is_named_before_backward_writes(rng, replacement, got):
    rnn = model(output_size=3)
    out, _ = rnn(rng.standard_normal((T, B, D)))
    before = {name: g.copy() for name, g in rnn.grads.items()}
    if replacement is None:
        del rnn.grads["W_hh_l0"]
    else:
        rnn.grads["W_hh_l0"] = replacement
    with pytest.raises(ValueError, match=r"rnn.grads\['W_hh_l0'\] must be a writable float64 array "
                                         r"of shape \(6, 6\) \(backward writes the gradient into "
                                         r"it\), got " + got):
        rnn.backward(np.ones(out.shape))
    for name, g in rnn.grads.items():  # nothing was written
        if name != "W_hh_l0":
            np.testing.assert_array_equal(g, before[name])


def test_repr():
    assert repr(RNN(3, 8)) == "elman.RNN(3, 8, dtype='float32')"
    assert repr(RNN(3, 8, num_layers=2, bidirectional=True, output_size=5,
                    output_activation="softmax", dtype=np.float64)) == (
        "elman.RNN(3, 8, num_layers=2, bidirectional=True, output_size=5, "
        "output_activation='softmax', dtype='float64')")


def test_import_never_imports_torch():
    """torch stays optional: elman and its model modules load without importing it."""
    code = ("import sys, elman, elman.model, elman.stack, elman.interop_torch; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("options", [{}, {"num_layers": 2}, {"num_layers": 2, "bidirectional": True},
                                     {"output_size": 3, "learn_h0": True}, {"batch_first": True}])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_without_input_grad_fills_the_same_gradients(options, with_lengths, rng):
    rnn = model(**options)
    randomize(rnn, rng)
    x = rng.standard_normal((B, T, D) if options.get("batch_first") else (T, B, D))
    lengths = np.array([T, 2, 0]) if with_lengths else None
    out, h_n = rnn(x, lengths=lengths)
    d_out, d_h_n = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    dx = rnn.backward(d_out, d_h_n)
    assert dx.shape == x.shape
    grads, dh0 = {k: v.copy() for k, v in rnn.grads.items()}, rnn.dh0.copy()
    for v in rnn.grads.values():
        v[...] = np.nan  # must be overwritten again
    assert rnn.backward(d_out, d_h_n, input_grad=False) is None
    for name, g in grads.items():
        assert g.tobytes() == rnn.grads[name].tobytes(), name
    assert dh0.tobytes() == rnn.dh0.tobytes()
