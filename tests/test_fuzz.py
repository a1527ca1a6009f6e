"""Property-based fuzzing of elman's public functions: whatever the arguments, the answer is

    a correct result (equal to elman.reference on the inputs as elman converts them), or a
    TypeError / ValueError / MemoryError whose message says what is wrong;

never a crash, never another exception type, never a warning, never a modified input.

Arguments are drawn with random shapes (consistent, or with one argument's shape broken), dtypes
(float16/32/64, long double, integers, bool, byte-swapped, and complex, object, strings, which
must be refused), memory layouts (C, Fortran, negative and step-2 strides, zero-stride broadcast
views, misaligned, read-only, nested lists) and values (NaN, +-inf, zero-sized axes). The
functional core, elman.RNN (constructor, forward, backward, stream, save/load) and the coursera
functions are also checked for correct results; the other public functions (cells, keras,
losses, optim, train, generate, slu, stateful, torch interop) for a result or a clear error.
Examples are derandomized and bounded, so the same cases run every time, in well under a
minute; the number of cases run is printed at the end. Bugs this found that are not fixed yet
have strict-xfail tests at the end of the file.
"""

import collections
import io
import logging
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elman
from elman import reference as ref

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=30)

CASES = collections.Counter()  # cases run, per test
OUTCOMES = collections.Counter()  # calls checked, by outcome: "result" or the exception type
ALLOWED_ERRORS = (TypeError, ValueError, MemoryError)

HIDDEN = ["tanh", "sigmoid", "relu", "identity"]
OUTPUT = ["identity", "softmax", "sigmoid"]


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    """After the module: the number of cases run, on the terminal (and in the log)."""
    yield
    line = (f"fuzz: {sum(CASES.values())} cases run ("
            + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())) + "); calls checked: "
            + ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items())))
    logging.getLogger(__name__).info(line)
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past pytest's output capture
            terminal.write_line("")
            terminal.write_line(line)


# --------------------------------------------------------------------------- #
# Drawing arrays: dtype, layout and values
# --------------------------------------------------------------------------- #

# Dtypes elman computes with (after conversion), weighted towards the common ones.
REAL_DTYPES = ["float32"] * 4 + ["float64"] * 4 + [
    "float16", "longdouble", ">f4", ">f8", "int8", "int32", "int64", "uint8", "bool"]
# Dtypes that must be refused with a TypeError.
BAD_DTYPES = ["complex64", "complex128", "object", "<U3", "datetime64[s]"]
LAYOUTS = ["c"] * 4 + ["fortran", "reversed", "step2", "broadcast", "misaligned", "readonly",
                       "list"]


def is_real_dtype(dtype):
    return np.dtype(dtype).kind in "fiub"


def values(rng, shape, dtype, special):
    """Random values of `shape` as `dtype`; `special` sprinkles NaN and infinities over floats."""
    return np.asarray(_values(rng, shape, np.dtype(dtype), special))  # shape (): 0-d, not a scalar


def _values(rng, shape, dtype, special):
    if dtype.kind == "f":
        a = np.array(rng.standard_normal(shape))
        if special and a.size:
            spots = rng.random(shape) < 0.15
            a[spots] = rng.choice([np.nan, np.inf, -np.inf], size=int(spots.sum()))
        return a.astype(dtype)
    if dtype.kind in "iu":
        return rng.integers(0 if dtype.kind == "u" else -3, 4, shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j).astype(dtype)
    if dtype.kind == "O":
        return rng.standard_normal(shape).astype(object)
    if dtype.kind == "U":
        return np.full(shape, "1.5", dtype=dtype)
    return np.zeros(shape, dtype=dtype)  # datetime64


def in_layout(a, layout, rng):
    """The same values as `a`, laid out in memory as `layout` says (or as a nested list)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "reversed" and a.ndim:  # negative strides on every axis
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if layout == "step2" and a.ndim:  # every other element of a twice-as-long last axis
        wide = np.repeat(a, 2, axis=-1)
        return wide[..., ::2]
    if layout == "broadcast" and a.ndim and a.size:  # a zero-stride view: one row repeated
        return np.broadcast_to(a[:1], a.shape)
    if layout == "misaligned" and a.dtype.kind in "fiu" and a.dtype.itemsize > 1:
        buf = np.empty(a.nbytes + 1, np.uint8)
        view = buf[1:].view(a.dtype).reshape(a.shape)
        view[...] = a
        return view
    if layout == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "list" and a.dtype.kind in "fb" and a.dtype.itemsize <= 8 and a.size:
        return a.tolist()
    return a


@st.composite
def arrays(draw, shape, bad_dtype_chance=True):
    """An argument of `shape`: a NumPy array (or nested list) of a random dtype and layout."""
    dtypes = REAL_DTYPES + (BAD_DTYPES if bad_dtype_chance else [])
    dtype = draw(st.sampled_from(dtypes))
    layout = draw(st.sampled_from(LAYOUTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    special = draw(st.integers(0, 9)) == 0  # NaN/inf in one argument out of ten
    return in_layout(values(rng, shape, dtype, special), layout, rng)


def as_numpy(arg):
    """What elman sees: numpy.asarray of the argument."""
    return np.asarray(arg)


def snapshot(arg):
    """Everything about an argument that a call must not change."""
    if isinstance(arg, np.ndarray):
        return (arg.dtype.str, arg.shape, arg.strides, arg.flags.writeable,
                pickle.dumps(np.array(arg, copy=True)))
    return pickle.dumps(arg)


def compute_dtype(arrays_):
    """float32 or float64, by the functional core's rule (NumPy's result type, float16 and
    float32 in float32, everything else in float64)."""
    r = np.result_type(*arrays_)
    return np.dtype(np.float32) if r.kind == "f" and r.itemsize <= 4 else np.dtype(np.float64)


# --------------------------------------------------------------------------- #
# Checking one call against the expected outcome
# --------------------------------------------------------------------------- #

def tolerance(dtype):
    return (2e-4, 2e-4) if np.dtype(dtype) == np.float32 else (1e-9, 1e-9)


def assert_close(got, want, dtype, what):
    """got equals want to the dtype's tolerance, relative to want's largest finite entry; NaN and
    infinities must sit at the same places."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_clear(fn, error):
    """elman's own error: a plain TypeError/ValueError with a message (not, say, NumPy's
    UFuncTypeError about a ufunc loop, which tells the user nothing about their argument), or a
    MemoryError (NumPy's allocation failure is a subclass of it)."""
    assert str(error).strip(), f"{fn.__name__} raised {type(error).__name__} without a message"
    assert type(error) in (TypeError, ValueError) or isinstance(error, MemoryError), (
        f"{fn.__name__} raised NumPy's {type(error).__name__}: {error}")
    OUTCOMES[type(error).__name__] += 1


def call_checked(fn, args, kwargs, expected_errors):
    """fn(*args, **kwargs), checked against the expected outcome.

    expected_errors: the exception types acceptable for these arguments (empty: the call must
    succeed). Returns the result, or None when the call raised one of expected_errors. Whatever
    happens, no argument may have changed and no warning may be issued.
    """
    before = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = fn(*args, **kwargs)
    except ALLOWED_ERRORS as e:
        assert expected_errors, f"{fn.__name__} raised {type(e).__name__}: {e}, expected a result"
        assert isinstance(e, tuple(expected_errors)), (
            f"{fn.__name__} raised {type(e).__name__}: {e}; expected one of "
            f"{[t.__name__ for t in expected_errors]}")
        assert_clear(fn, e)
        result = None
    else:
        assert not expected_errors, (f"{fn.__name__} returned a result; expected one of "
                                     f"{[t.__name__ for t in expected_errors]}")
        OUTCOMES["result"] += 1
    after = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
    assert before == after, f"{fn.__name__} modified an input"
    return result


def reference_result(fn, *args, **kwargs):
    """The NumPy reference, with its floating-point warnings silenced (NaN and infinity are
    legitimate inputs, and the reference has no say in how they are reported)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- #
# The functional core
# --------------------------------------------------------------------------- #

# Each argument's shape in terms of the sizes T, B, D, H, O, C; "lead" is (T, B).
SHAPES = {
    "cell_forward": {"x_t": "BD", "h_prev": "BH", "W_xh": "HD", "W_hh": "HH", "b_h": "H"},
    "cell_backward": {"dh_next": "BH", "x_t": "BD", "h_prev": "BH", "h_next": "BH",
                      "W_xh": "HD", "W_hh": "HH"},
    "rnn_forward": {"x": "TBD", "h0": "BH", "W_xh": "HD", "W_hh": "HH", "b_h": "H"},
    "rnn_backward": {"dhs": "TBH", "x": "TBD", "h0": "BH", "hs": "TBH", "W_xh": "HD",
                     "W_hh": "HH"},
    "output_forward": {"hs": "TBH", "W_hy": "OH", "b_y": "O"},
    "output_backward": {"dys": "TBO", "hs": "TBH", "ys": "TBO", "W_hy": "OH"},
}


def shape_of(spec, sizes):
    return tuple(sizes[c] for c in spec)


def shapes_consistent(name, shapes):
    """Whether the argument shapes of the functional core's `name` fit together (the spec each
    argument's shape must meet, with the sizes read where the kernel reads them)."""
    def ndim_ok(arg, n):
        return len(shapes[arg]) == n

    if name in ("cell_forward", "cell_backward", "rnn_forward", "rnn_backward"):
        x_name = "x_t" if name.startswith("cell") else "x"
        if not ndim_ok(x_name, 2 if name.startswith("cell") else 3) or not ndim_ok("W_hh", 2):
            return False
        sizes = dict(zip("TBD", ((1,) if name.startswith("cell") else ()) + shapes[x_name]))
        sizes["H"] = shapes["W_hh"][0]
        spec = SHAPES[name]
        if name.startswith("cell"):
            spec = {k: v.replace("T", "") for k, v in spec.items()}
        return all(shapes[arg] == shape_of(s, sizes) for arg, s in spec.items())
    # output layer: hs[..., H] with any leading axes, W_hy[O, H]
    hs = shapes["hs"]
    if len(hs) < 1 or not ndim_ok("W_hy", 2) or shapes["W_hy"][1] != hs[-1]:
        return False
    O = shapes["W_hy"][0]
    if name == "output_forward":
        return shapes["b_y"] == (O,)
    return shapes["ys"] == hs[:-1] + (O,) and shapes["dys"] == hs[:-1] + (O,)


@st.composite
def argument_shapes(draw, name):
    """{argument: shape}: consistent sizes, and with probability 1/4 one argument reshaped."""
    sizes = {c: draw(st.integers(0, 5)) for c in "TBDO"}
    sizes["H"] = draw(st.sampled_from([0, 1, 2, 3, 7, 9, 17]))
    spec = SHAPES[name]
    if name.startswith("cell"):
        spec = {k: v.replace("T", "") for k, v in spec.items()}
    if name.startswith("output") and draw(st.booleans()):  # other leading shapes: [N, H], [H]
        lead = draw(st.sampled_from(["", "B", "TBD"]))
        spec = {k: (lead + v[-1] if k in ("hs", "dys", "ys") else v) for k, v in spec.items()}
    shapes = {arg: shape_of(s, sizes) for arg, s in spec.items()}
    if draw(st.integers(0, 3)) == 0:
        broken = draw(st.sampled_from(sorted(shapes)))
        shapes[broken] = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    return shapes


@st.composite
def activation_arg(draw, valid):
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(st.sampled_from([None, 1, b"tanh", np.str_("relu")]))
    if choice == 1:
        return draw(st.sampled_from(["elu", "", "TANH", "softmax", "tanh "]))
    return draw(st.sampled_from(valid))


def activation_errors(activation, valid):
    if not isinstance(activation, str):
        return {TypeError}
    if activation not in valid:
        return {ValueError}
    return set()


def expected_errors_of_arrays(converted, shapes_ok):
    """The errors acceptable for these converted arrays: TypeError for a kind elman refuses,
    ValueError for shapes that do not fit (either, when both are wrong)."""
    errors = set()
    if any(not is_real_dtype(a.dtype) for a in converted):
        errors.add(TypeError)
    if not shapes_ok:
        errors.add(ValueError)
    return errors


def check_functional(name, args, activation):
    """Call elman.<name> and compare with elman.reference.<name> on the converted inputs."""
    valid = OUTPUT if name.startswith("output") else HIDDEN
    converted = [as_numpy(a) for a in args]
    shapes = dict(zip(SHAPES[name], [c.shape for c in converted]))
    errors = activation_errors(activation, valid) or expected_errors_of_arrays(
        converted, shapes_consistent(name, shapes))
    got = call_checked(getattr(elman, name), args + [activation], {}, errors)
    if got is None:
        return
    dtype = compute_dtype(converted)
    got = got if isinstance(got, tuple) else (got,)
    try:
        want = reference_result(getattr(ref, name), *[c.astype(dtype) for c in converted],
                                activation)
    except ValueError:  # NumPy's max of zero classes (softmax over O = 0): elman gives []
        assert all(g.size == 0 for g in got)
        return
    for i, (g, w) in enumerate(zip(got, want if isinstance(want, tuple) else (want,))):
        assert g.dtype == dtype, f"{name} result {i} is {g.dtype}, expected {dtype}"
        assert g.flags.c_contiguous and g.flags.writeable
        assert not any(np.shares_memory(g, c) for c in converted if isinstance(c, np.ndarray))
        assert_close(g, w, dtype, f"{name} result {i}")


@pytest.mark.parametrize("name", list(SHAPES))
@FUZZ
@given(data=st.data())
def test_functional_core(name, data):
    CASES[name] += 1
    shapes = data.draw(argument_shapes(name), label="shapes")
    args = [data.draw(arrays(shape), label=arg) for arg, shape in shapes.items()]
    activation = data.draw(activation_arg(OUTPUT if name.startswith("output") else HIDDEN))
    check_functional(name, args, activation)


@FUZZ
@given(data=st.data())
def test_softmax_cross_entropy(data):
    CASES["softmax_cross_entropy"] += 1
    lead = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=3), label="lead"))
    C = data.draw(st.integers(0, 6))
    logits = data.draw(arrays(lead + (C,)), label="logits")
    target_shape = lead if data.draw(st.integers(0, 5)) else tuple(
        data.draw(st.lists(st.integers(0, 3), max_size=3)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    target_dtype = data.draw(st.sampled_from(["int64", "int64", "int32", "uint8", "int8",
                                              "float64", "bool", "object"]))
    targets = rng.integers(-1 if data.draw(st.integers(0, 6)) == 0 else 0,
                           max(C, 1) + (data.draw(st.integers(0, 6)) == 0), target_shape)
    targets = in_layout(targets.astype(target_dtype), data.draw(st.sampled_from(LAYOUTS)), rng)
    mask = None
    if data.draw(st.booleans()):
        mask_shape = lead if data.draw(st.integers(0, 5)) else target_shape + (1,)
        mask = data.draw(arrays(mask_shape), label="mask")
        if data.draw(st.booleans()):  # positions switched off, where the targets may be anything
            mask = np.asarray(mask) * (rng.random(mask_shape) < 0.6)
    reduction = data.draw(st.sampled_from(["mean", "mean", "sum", "max", None]))

    lg, tg = as_numpy(logits), as_numpy(targets)
    mk = None if mask is None else as_numpy(mask)
    errors = set()
    if reduction not in ("mean", "sum"):
        errors = {TypeError} if not isinstance(reduction, str) else {ValueError}
    else:
        if not is_real_dtype(lg.dtype) or tg.dtype.kind not in "iu" or (
                mk is not None and not is_real_dtype(mk.dtype)):
            errors.add(TypeError)
        if lg.ndim < 1 or tg.shape != lg.shape[:-1] or (mk is not None and mk.shape != tg.shape):
            errors.add(ValueError)
        if not errors:
            counted = np.ones(tg.shape, bool) if mk is None else mk.astype(compute_dtype([lg])) != 0
            if ((tg < 0) | (tg >= C))[counted].any():
                errors.add(ValueError)
    args = [logits, targets, mask, reduction]
    got = call_checked(elman.softmax_cross_entropy, args, {}, errors)
    if got is None:
        return
    dtype = compute_dtype([lg])
    mask_ref = None if mk is None else mk.astype(dtype)
    loss, d = got
    assert type(loss) is float and d.dtype == dtype and d.shape == lg.shape
    try:
        want_loss, want_d = reference_result(ref.softmax_cross_entropy, lg.astype(dtype), tg,
                                             mask_ref, reduction)
    except ValueError:  # NumPy's max over zero classes, with no position at all: elman gives 0
        assert lg.size == 0 and loss == 0.0
        return
    assert_close(np.array(loss), np.array(want_loss), dtype, "loss")
    assert_close(d, want_d, dtype, "dlogits")


# --------------------------------------------------------------------------- #
# Sizes too large to allocate
# --------------------------------------------------------------------------- #

# Inputs of no (or little) data whose results would need petabytes: a MemoryError, at once.
# (Sizes are far beyond any machine's memory, so no allocation can succeed and then be touched.)
HUGE = 10**7


def huge_cases():
    empty_x = np.zeros((HUGE, HUGE, 0))  # 0 bytes of data, 10**14 rows of output
    f32 = np.float32
    yield "rnn_forward", lambda: elman.rnn_forward(empty_x, np.zeros((HUGE, 1)), np.zeros((1, 0)),
                                                   np.zeros((1, 1)), np.zeros(1))
    yield "output_forward", lambda: elman.output_forward(np.zeros((HUGE, HUGE, 0), f32),
                                                         np.zeros((3, 0), f32), np.zeros(3, f32))
    # A zero-stride view reads as 2 TB once copied to contiguous memory.
    broadcast_h0 = np.broadcast_to(np.zeros(1), (2**38, 1))
    yield "rnn_forward (broadcast h0)", lambda: elman.rnn_forward(
        np.zeros((1, 2**38, 0)), broadcast_h0, np.zeros((1, 0)), np.zeros((1, 1)), np.zeros(1))
    yield "rnn_backward", lambda: elman.rnn_backward(
        np.broadcast_to(np.zeros(1), (HUGE, HUGE, 1)), empty_x, np.zeros((HUGE, 1)),
        np.broadcast_to(np.zeros(1), (HUGE, HUGE, 1)), np.zeros((1, 0)), np.zeros((1, 1)))
    yield "softmax_cross_entropy", lambda: elman.softmax_cross_entropy(
        np.broadcast_to(np.zeros(1), (HUGE, HUGE, 2)),
        np.broadcast_to(np.zeros(1, np.int8), (HUGE, HUGE)))
    yield "RNN", lambda: elman.RNN(10**6, 10**6)
    yield "RNN.forward", lambda: elman.RNN(1, 2).forward(
        np.broadcast_to(np.zeros(1), (HUGE, HUGE, 1)))


@pytest.mark.parametrize("name,call", list(huge_cases()), ids=[n for n, _ in huge_cases()])
def test_sizes_too_large_to_allocate_raise_memory_error(name, call):
    CASES["too large"] += 1
    with pytest.raises(MemoryError):
        call()


# --------------------------------------------------------------------------- #
# elman.RNN: constructor, forward, backward, stream, save and load
# --------------------------------------------------------------------------- #

def reference_stack(rnn, x, h0, d_out=None):
    """The model computed with elman.reference, layer by layer and direction by direction (the
    reverse direction on the sequence flipped in time), in float64, time-major, no lengths:
    (out[T, B, *], h_n[L*dirs, B, H]) and, given d_out, (dx, {name: gradient})."""
    P = {k: v.astype(np.float64) for k, v in rnn.params.items()}
    dirs, H, f = rnn.num_directions, rnn.hidden_size, rnn.activation
    suffix = [f"_l{layer}" + ("_reverse" if d else "") for layer in range(rnn.num_layers)
              for d in range(dirs)]
    inputs, runs, h_n = [x], {}, []
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            seq = inputs[-1] if d == 0 else inputs[-1][::-1]
            hs = ref.rnn_forward(seq, h0[k], P["W_xh" + suffix[k]], P["W_hh" + suffix[k]],
                                 P["b_h" + suffix[k]], f)
            runs[k] = (seq, hs)
            h_n.append(hs[-1] if len(hs) else h0[k])
            outs.append(hs if d == 0 else hs[::-1])
        inputs.append(np.concatenate(outs, axis=-1))
    top = inputs[-1]
    out = top if rnn.output_size is None else ref.output_forward(top, P["W_hy"], P["b_y"],
                                                                 rnn.output_activation)
    if d_out is None:
        return out, np.stack(h_n)
    grads = {}
    grad = d_out
    if rnn.output_size is not None:
        grad, grads["W_hy"], grads["b_y"] = ref.output_backward(d_out, top, out, P["W_hy"],
                                                                rnn.output_activation)
    for layer in reversed(range(rnn.num_layers)):
        d_input = np.zeros_like(inputs[layer])
        for d in range(dirs):
            k = layer * dirs + d
            seq, hs = runs[k]
            g = grad[..., d * H:(d + 1) * H]
            dseq, _, *weights = ref.rnn_backward(g if d == 0 else g[::-1], seq, h0[k], hs,
                                                 P["W_xh" + suffix[k]], P["W_hh" + suffix[k]], f)
            d_input += dseq if d == 0 else dseq[::-1]
            for kind, w in zip(("W_xh", "W_hh", "b_h"), weights):
                grads[kind + suffix[k]] = w
        grad = d_input
    return out, np.stack(h_n), grad, grads


@st.composite
def models(draw):
    output_size = draw(st.sampled_from([None, None, 1, 3]))
    return elman.RNN(
        draw(st.integers(1, 4)), draw(st.integers(1, 6)), num_layers=draw(st.integers(1, 2)),
        activation=draw(st.sampled_from(HIDDEN)), bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()), output_size=output_size,
        output_activation=draw(st.sampled_from(OUTPUT)) if output_size else "identity",
        learn_h0=draw(st.booleans()), dtype=draw(st.sampled_from(["float32", "float64"])),
        seed=draw(st.integers(0, 99)))


CONSTRUCTOR_VALUES = [1, 3, 0, -2, 2.0, True, "3", None, np.int64(2), 2**70, [3], np.nan]


@FEW
@given(data=st.data())
def test_rnn_constructor(data):
    CASES["RNN()"] += 1
    kwargs = {name: data.draw(st.sampled_from(CONSTRUCTOR_VALUES + extra), label=name)
              for name, extra in [("input_size", []), ("hidden_size", []), ("num_layers", [])]}
    for name, choices in [("activation", HIDDEN + ["elu", None]),
                          ("bidirectional", [False, True, 1, "yes"]),
                          ("output_size", [None, 2, 0, 1.5]),
                          ("output_activation", OUTPUT + ["tanh"]),
                          ("dtype", ["float32", np.float64, "float16", "int32", None, object])]:
        if data.draw(st.booleans()):
            kwargs[name] = data.draw(st.sampled_from(choices), label=name)
    try:
        rnn = elman.RNN(kwargs.pop("input_size"), kwargs.pop("hidden_size"), **kwargs)
    except (TypeError, ValueError) as e:
        assert str(e)
        return
    assert rnn.input_size >= 1 and rnn.hidden_size >= 1 and rnn.dtype in (np.float32, np.float64)


def time_major(rnn, a, unbatched):
    """x or out of the user's layout as [T, B, ...]."""
    if unbatched:
        return a[:, None]
    return a.transpose(1, 0, 2) if rnn.batch_first else a


@FUZZ
@given(data=st.data())
def test_rnn_forward_and_backward(data):
    CASES["RNN.forward/backward"] += 1
    rnn = data.draw(models(), label="rnn")
    T, B = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 3))
    unbatched = data.draw(st.integers(0, 4)) == 0
    D = rnn.input_size if data.draw(st.integers(0, 7)) else rnn.input_size + 1
    shape = (T, D) if unbatched else ((B, T, D) if rnn.batch_first else (T, B, D))
    x = data.draw(arrays(shape), label="x")
    LD, H = rnn.num_layers * rnn.num_directions, rnn.hidden_size
    h0 = None
    if data.draw(st.booleans()):
        h0_shape = (LD, H) if unbatched else (LD, B, H)
        if data.draw(st.integers(0, 7)) == 0:
            h0_shape = h0_shape[:-1] + (H + 1,)
        h0 = data.draw(arrays(h0_shape, bad_dtype_chance=False), label="h0")
    lengths = None
    if not unbatched and data.draw(st.integers(0, 2)) == 0:
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        lengths = rng.integers(0, T + 1 + (data.draw(st.integers(0, 5)) == 0), B)
        lengths = data.draw(st.sampled_from([lengths, lengths.tolist(), lengths.astype(np.int8),
                                             lengths.astype(float), lengths[:-1]]))

    xa = as_numpy(x)
    errors = set()
    if not is_real_dtype(xa.dtype):
        errors.add(TypeError)
    if D != rnn.input_size or (h0 is not None and as_numpy(h0).shape[-1] != H):
        errors.add(ValueError)
    if lengths is not None:
        la = np.asarray(lengths)
        if la.dtype.kind not in "iu" and la.size:
            errors.add(TypeError)
        elif la.shape != (B,) or ((la < 0) | (la > T)).any():
            errors.add(ValueError)
    got = call_checked(rnn.forward, [x, h0, lengths], {}, errors)
    if got is None:
        return
    out, h_n = got
    assert out.dtype == rnn.dtype and h_n.dtype == rnn.dtype
    x_tm = time_major(rnn, xa.astype(np.float64), unbatched)
    if h0 is None:
        h0_tm = np.zeros((LD, x_tm.shape[1], H))
        if rnn.learn_h0:
            h0_tm += rnn.params["h0"][:, None, :]
    else:
        h0_tm = as_numpy(h0).astype(rnn.dtype).astype(np.float64)
        h0_tm = h0_tm[:, None] if unbatched else h0_tm
    x_tm = x_tm.astype(rnn.dtype).astype(np.float64)  # what the model computes with
    out_tm = time_major(rnn, out, unbatched)
    h_n_b = h_n[:, None] if unbatched else h_n
    for b in range(x_tm.shape[1]):  # each sequence alone, cut to its length
        n = x_tm.shape[0] if lengths is None else int(np.asarray(lengths)[b])
        want_out, want_h_n = reference_result(reference_stack, rnn, x_tm[:n, b:b + 1],
                                              h0_tm[:, b:b + 1])
        assert_close(out_tm[:n, b:b + 1], want_out, rnn.dtype, f"out of sequence {b}")
        assert not out_tm[n:, b].any()
        assert_close(h_n_b[:, b:b + 1], want_h_n, rnn.dtype, f"h_n of sequence {b}")
    if lengths is not None:
        return
    # backward: against the reference stack, for a random d_out (or a broken one)
    d_out = data.draw(arrays(out.shape, bad_dtype_chance=False), label="d_out")
    broken = data.draw(st.integers(0, 7)) == 0
    if broken:
        d_out = np.zeros(out.shape + (1,))
    dx = call_checked(rnn.backward, [d_out], {}, {ValueError} if broken else set())
    if dx is None:
        return
    assert dx.shape == xa.shape and dx.dtype == rnn.dtype
    d_tm = time_major(rnn, as_numpy(d_out).astype(rnn.dtype).astype(np.float64), unbatched)
    _, _, want_dx, want_grads = reference_result(reference_stack, rnn, x_tm, h0_tm, d_tm)
    assert_close(time_major(rnn, dx, unbatched), want_dx, rnn.dtype, "dx")
    for name, want in want_grads.items():
        assert_close(rnn.grads[name], want, rnn.dtype, f"grads[{name!r}]")


@FEW
@given(data=st.data())
def test_rnn_stream(data):
    CASES["RNN.stream"] += 1
    rnn = data.draw(models(), label="rnn")
    batch = data.draw(st.sampled_from([1, 2, 0, -1, 1.5]), label="batch_size")
    if rnn.bidirectional or not isinstance(batch, int) or batch < 1:
        with pytest.raises((TypeError, ValueError)):
            rnn.stream(batch)
        return
    stream = rnn.stream(batch)
    steps, last = [], None
    for _ in range(data.draw(st.integers(0, 3))):
        width = rnn.input_size if data.draw(st.integers(0, 5)) else rnn.input_size + 1
        x_t = data.draw(arrays((batch, width)), label="x_t")
        errors = expected_errors_of_arrays([as_numpy(x_t)], width == rnn.input_size)
        y = call_checked(stream.step, [x_t], {}, errors)
        if y is not None:
            steps.append(as_numpy(x_t).astype(rnn.dtype))
            last = np.array(y)  # a copy: the stream reuses its buffers
    if steps:  # the steps taken equal forward over the same sequence
        x = np.stack(steps).astype(np.float64)
        want, _ = reference_result(reference_stack, rnn, x, np.broadcast_to(
            rnn.params["h0"][:, None] if rnn.learn_h0 else np.zeros(1),
            (rnn.num_layers, batch, rnn.hidden_size)))
        assert_close(last, want[-1], rnn.dtype, "last streamed step")


@FEW
@given(data=st.data())
def test_rnn_load_of_damaged_files(data, tmp_path_factory):
    """A saved model loads back exactly; any damage to its bytes gives a ValueError (or the
    very same model, when the damage hit bytes that do not matter), never anything else."""
    CASES["RNN.save/load"] += 1
    rnn = data.draw(models(), label="rnn")
    buffer = io.BytesIO()
    rnn.save(buffer)
    blob = bytearray(buffer.getvalue())
    damage = data.draw(st.sampled_from(["none", "truncate", "flip", "zero", "foreign"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if damage == "truncate":
        blob = blob[:int(rng.integers(0, len(blob)))]
    elif damage == "flip":
        for i in rng.integers(0, len(blob), int(rng.integers(1, 8))):
            blob[i] ^= int(rng.integers(1, 256))
    elif damage == "zero":
        start = int(rng.integers(0, len(blob)))
        blob[start:start + 64] = bytes(len(blob[start:start + 64]))
    elif damage == "foreign":
        other = io.BytesIO()
        np.savez(other, config=np.array("{}"), format_version=np.array(1), W=np.zeros(3))
        blob = bytearray(data.draw(st.sampled_from([other.getvalue(), b"", b"PK\x03\x04",
                                                     pickle.dumps({"a": 1})])))
    path = tmp_path_factory.mktemp("load") / "model.npz"
    path.write_bytes(bytes(blob))
    try:
        loaded = elman.RNN.load(path)
    except ValueError as e:
        assert damage != "none" and str(e)
        return
    assert loaded.config() == rnn.config()
    for name, value in rnn.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)


@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_from_onnx_of_damaged_files(data, tmp_path_factory):
    """An ONNX file written by RNN.to_onnx reads back; damaged bytes give a ValueError."""
    pytest.importorskip("onnx")
    CASES["from_onnx"] += 1
    rnn = elman.RNN(3, 4, output_size=2, seed=0)
    folder = tmp_path_factory.mktemp("onnx")
    rnn.to_onnx(folder / "model.onnx")
    blob = bytearray((folder / "model.onnx").read_bytes())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    damage = data.draw(st.sampled_from(["none", "truncate", "flip", "random"]))
    if damage == "truncate":
        blob = blob[:int(rng.integers(0, len(blob)))]
    elif damage == "flip":
        for i in rng.integers(0, len(blob), int(rng.integers(1, 8))):
            blob[i] ^= int(rng.integers(1, 256))
    elif damage == "random":
        blob = bytearray(rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes())
    path = folder / "damaged.onnx"
    path.write_bytes(bytes(blob))
    loaded = call_robustly(elman.from_onnx, str(path))
    if damage == "none":
        assert loaded is not None
        for name, value in rnn.params.items():
            np.testing.assert_array_equal(loaded.params[name], value)


# --------------------------------------------------------------------------- #
# Seed modules: coursera, cells, keras; losses and optimizers
# --------------------------------------------------------------------------- #

@FUZZ
@given(data=st.data())
def test_coursera_forward_and_backward(data):
    from elman import coursera

    CASES["coursera"] += 1
    n_x, n_a, n_y, m, T_x = (data.draw(st.integers(1, 4)) for _ in range(5))
    shapes = {"Wax": (n_a, n_x), "Waa": (n_a, n_a), "Wya": (n_y, n_a), "ba": (n_a, 1),
              "by": (n_y, 1)}
    broken = data.draw(st.sampled_from([None] * 4 + sorted(shapes)))
    if broken:
        shapes[broken] = (shapes[broken][0] + 1,) + shapes[broken][1:]
    parameters = {k: data.draw(arrays(s, bad_dtype_chance=False), label=k)
                  for k, s in shapes.items()}
    x = data.draw(arrays((n_x, m, T_x), bad_dtype_chance=False), label="x")
    a0 = data.draw(arrays((n_a, m), bad_dtype_chance=False), label="a0")
    errors = {ValueError} if broken else set()
    got = call_checked(coursera.rnn_forward, [x, a0, parameters], {}, errors)
    if got is None:
        return
    a, y_pred, caches = got
    P = {k: as_numpy(v) for k, v in parameters.items()}
    dtype = compute_dtype([as_numpy(x), as_numpy(a0), P["Wax"], P["Waa"], P["ba"]])
    hs = reference_result(ref.rnn_forward, as_numpy(x).transpose(2, 1, 0).astype(dtype),
                          as_numpy(a0).T.astype(dtype), P["Wax"].astype(dtype),
                          P["Waa"].astype(dtype), P["ba"][:, 0].astype(dtype))
    assert_close(a, hs.transpose(2, 1, 0), dtype, "a")
    da = np.ones(a.shape)
    grads = call_checked(coursera.rnn_backward, [da, caches], {}, set())
    want = reference_result(ref.rnn_backward, da.transpose(2, 1, 0), as_numpy(x).transpose(2, 1, 0),
                            as_numpy(a0).T, a.transpose(2, 1, 0), P["Wax"], P["Waa"])
    assert_close(grads["dx"], want[0].transpose(2, 1, 0), dtype, "dx")
    assert_close(grads["dWaa"], want[3], dtype, "dWaa")


@FEW
@given(data=st.data())
def test_cells(data):
    from elman import cells

    CASES["cells"] += 1
    H, D, B = (data.draw(st.integers(1, 4)) for _ in range(3))
    cell = cells.BasicRNNCell(H, data.draw(st.sampled_from([None, "relu", np.tanh])), seed=1)
    if data.draw(st.booleans()):
        cell = cells.OutputProjectionWrapper(cell, data.draw(st.integers(1, 3)), seed=2)
    inputs = data.draw(arrays((B, D)), label="inputs")
    state_width = H if data.draw(st.integers(0, 5)) else H + 1
    state = data.draw(arrays((B, state_width)), label="state")
    converted = [as_numpy(inputs), as_numpy(state)]
    errors = expected_errors_of_arrays(converted, state_width == H)
    got = call_checked(cell, [inputs, state], {}, errors)
    if got is None:
        return
    output, new_state = got
    base = cell.cell if isinstance(cell, cells.OutputProjectionWrapper) else cell
    dtype = new_state.dtype
    want = reference_result(ref.cell_forward, *[c.astype(dtype) for c in converted],
                            base.W_xh.astype(dtype), base.W_hh.astype(dtype),
                            base.b_h.astype(dtype), base.activation)
    assert_close(new_state, want, dtype, "new_state")


@FEW
@given(data=st.data())
def test_keras_weights_round_trip(data):
    CASES["keras"] += 1
    D, H = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
    shapes = [(D, H), (H, H), (H,)]
    if data.draw(st.integers(0, 3)) == 0:
        i = data.draw(st.integers(0, 2))
        shapes[i] = shapes[i] + (1,)
    weights = [data.draw(arrays(s), label=f"w{i}") for i, s in enumerate(shapes)]
    converted = [as_numpy(w) for w in weights]
    ok = [c.shape for c in converted] == [(D, H), (H, H), (H,)]
    got = call_checked(elman.from_keras_weights, weights, {},
                       expected_errors_of_arrays(converted, ok))
    if got is None:
        return
    np.testing.assert_array_equal(got["W_xh"], converted[0].T.astype(got["W_xh"].dtype))
    back = elman.to_keras_weights(got["W_xh"], got["W_hh"], got["b_h"])
    for b, c in zip(back, converted):
        np.testing.assert_array_equal(b, c.astype(b.dtype))


LOSSES = ["mse", "binary_cross_entropy_with_logits", "binary_cross_entropy", "cross_entropy"]


@pytest.mark.parametrize("name", LOSSES)
@FEW
@given(data=st.data())
def test_losses(name, data):
    losses = pytest.importorskip("elman.losses")

    CASES[f"losses.{name}"] += 1
    shape = tuple(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))
    predictions = data.draw(arrays(shape), label="predictions")
    if name == "cross_entropy":
        rng = np.random.default_rng(0)
        targets = rng.integers(0, max(shape[-1], 1), shape[:-1])
    else:
        targets = data.draw(arrays(shape if data.draw(st.integers(0, 5)) else shape + (1,)),
                            label="targets")
    if name == "binary_cross_entropy":  # probabilities, mostly inside [0, 1]
        predictions = np.clip(np.abs(as_numpy(predictions)), 0, 1.01) if is_real_dtype(
            as_numpy(predictions).dtype) else predictions
    mask = None
    if data.draw(st.booleans()):
        mask = data.draw(arrays(shape[:data.draw(st.integers(0, len(shape)))]), label="mask")
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    got = call_robustly(getattr(losses, name), predictions, targets, mask, reduction)
    if got is None:
        return
    loss, grad = got
    assert isinstance(loss, float)
    assert grad.shape == as_numpy(predictions).shape and grad.dtype.kind == "f"


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"])
# An infinite gradient makes Adagrad, RMSprop, Adam and AdamW divide inf by inf: the parameters
# become NaN, as in PyTorch, with no warning (the suite turns warnings into errors).
@FEW
@given(data=st.data())
def test_optimizers(name, data):
    optim = pytest.importorskip("elman.optim")

    CASES[f"optim.{name}"] += 1
    params = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3)}
    lr = data.draw(st.sampled_from([1e-3, 0.0, -1.0, np.nan, "0.1", None]), label="lr")
    opt = call_robustly(getattr(optim, name), params, lr=lr)
    if opt is None:
        return
    grads = {"w": data.draw(arrays((2, 3)), label="dw"), "b": data.draw(arrays((3,)), label="db")}
    if data.draw(st.integers(0, 5)) == 0:
        grads = {"w": grads["w"]}
    before = {k: v.copy() for k, v in params.items()}
    try:
        opt.step(grads)
    except ALLOWED_ERRORS as e:
        assert_clear(opt.step, e)
        for k, v in params.items():  # a refused step changes nothing
            np.testing.assert_array_equal(v, before[k])
        return
    for k, v in params.items():
        assert v.dtype == before[k].dtype and v.shape == before[k].shape


# --------------------------------------------------------------------------- #
# Everything else public: a result or a clear error, whatever the arguments
# --------------------------------------------------------------------------- #

# Values of any kind for arguments that take a number, a flag, a name or an array.
ODD_VALUES = [0, 1, 2, 3, -1, 2.5, np.nan, np.inf, True, None, "2", "tanh", [1, 2], [[0.5]],
              np.int64(3), np.float32(0.5), np.zeros((2, 2)), np.array([1, 0, 2]),
              np.array(["a"]), np.zeros(3, complex), {"a": 1}, 2**70]


def call_robustly(fn, *args, keep_inputs=True, **kwargs):
    """fn(*args, **kwargs) must return, or raise TypeError/ValueError/MemoryError with a message;
    no warning; with keep_inputs, no argument changed. The result, or None after an error."""
    before = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = fn(*args, **kwargs)
    except ALLOWED_ERRORS as e:
        assert_clear(fn, e)
        result = None
    else:
        OUTCOMES["result"] += 1
    if keep_inputs:
        after = [snapshot(a) for a in args] + [snapshot(v) for v in kwargs.values()]
        assert before == after, f"{fn.__name__} modified an input"
    return result


def odd(data, label, *extra):
    return data.draw(st.sampled_from(ODD_VALUES + list(extra)), label=label)


@FEW
@given(data=st.data())
def test_coursera_cell_clip_and_sample(data):
    from elman import coursera

    CASES["coursera cell/clip/sample"] += 1
    n_x, n_a, m = (data.draw(st.integers(1, 3)) for _ in range(3))
    parameters = {"Wax": np.full((n_a, n_x), 0.3), "Waa": np.eye(n_a) * 0.5,
                  "Wya": np.ones((n_x, n_a)), "ba": np.zeros((n_a, 1)), "by": np.zeros((n_x, 1))}
    victim = data.draw(st.sampled_from([None, None, "Wax", "Waa", "Wya", "ba", "by"]))
    if victim:
        parameters[victim] = odd(data, victim)
    xt = data.draw(st.sampled_from([np.ones((n_x, m)), np.ones((n_x + 1, m)), odd(data, "xt")]))
    a_prev = data.draw(st.sampled_from([np.zeros((n_a, m)), odd(data, "a_prev")]))
    try:
        got = call_robustly(coursera.rnn_cell_forward, xt, a_prev, parameters)
    except KeyError as e:  # the notebook's dict interface: a missing key is a KeyError
        assert victim is not None and str(e)
        return
    if got is not None:
        a_next, yt_pred, cache = got
        np.testing.assert_allclose(yt_pred.sum(axis=0), 1, rtol=1e-6)
        call_robustly(coursera.rnn_cell_backward, odd(data, "da_next", np.ones_like(a_next)),
                      cache)
    gradients = {"dWax": data.draw(arrays((2, 2)), label="dWax")}
    clipped = call_robustly(coursera.clip, gradients, odd(data, "maxValue", 5, 0.5),
                            keep_inputs=False)  # clips in place, as the notebook documents
    if clipped is not None:
        g = clipped["dWax"]
        assert np.all(np.isnan(g) | (np.abs(g) <= 5))
    if victim is None:
        char_to_ix = {**{str(i): i for i in range(n_x - 1)}, "\n": n_x - 1}
        indices = call_robustly(coursera.sample, parameters, char_to_ix,
                                odd(data, "seed", 0, 7))
        if indices is not None:
            assert all(0 <= i < n_x for i in indices) and indices[-1] == n_x - 1


@FEW
@given(data=st.data())
def test_generate(data):
    from elman import generate

    CASES["generate"] += 1
    V = data.draw(st.integers(1, 4))
    rnn = elman.RNN(V, 3, output_size=V, seed=0,
                    output_activation=data.draw(st.sampled_from(["identity", "softmax"])))
    start = data.draw(st.sampled_from([0, V - 1, V, -1, [0, 1 % V], np.eye(V)[:2], [],
                                       np.zeros((2, V + 1)), "a", 1.5, None]), label="start")
    length = odd(data, "length", 0, 5)
    temperature = odd(data, "temperature", 1.0, 0.0, 0.5)
    tokens = call_robustly(generate.sample, rnn, start, length, temperature, seed=0)
    if tokens is not None:
        assert tokens.dtype == np.int64 and tokens.shape == (int(length),)
        assert ((0 <= tokens) & (tokens < V)).all()
    # next_token_distribution checks none of its arguments (test_next_token_distribution_...):
    # only valid ones here, logits or probabilities, and a temperature >= 0.
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    activation = data.draw(st.sampled_from(["identity", "softmax"]))
    scores = rng.standard_normal(V) if activation == "identity" else rng.dirichlet(np.ones(V))
    probs = call_robustly(generate.next_token_distribution, scores, activation,
                          data.draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])))
    assert probs.shape == (V,) and probs.sum() == pytest.approx(1)


@FEW
@given(data=st.data())
def test_train_helpers(data):
    from elman import train

    CASES["train helpers"] += 1
    indices = data.draw(st.sampled_from([np.array([0, 2, 1]), [[0], [3]], np.array([-1, 0]),
                                         np.array([0.5]), np.array([], int), "ab"]))
    # Not a string: test_one_hot_checks_num_classes.
    num_classes = data.draw(st.sampled_from([v for v in ODD_VALUES if not isinstance(v, str)]
                                            + [3, 4]), label="num_classes")
    encoded = call_robustly(train.one_hot, indices, num_classes)
    if encoded is not None:
        idx = np.asarray(indices)
        assert encoded.shape == idx.shape + (int(num_classes),)
        assert (encoded.sum(axis=-1) == 1).all()
        if encoded.size:
            np.testing.assert_array_equal(encoded.argmax(-1), idx)
    tokens = data.draw(st.sampled_from([np.arange(20) % 5, list(range(7)), np.arange(3),
                                        np.zeros((2, 3), int), np.array([0.5, 1.0]), []]))
    batches = call_robustly(train.CharBatches, tokens, odd(data, "batch_size", 2, 1),
                            odd(data, "seq_len", 3, 1))
    if batches is not None:
        inputs, targets, restart = next(batches)
        assert inputs.shape == targets.shape and isinstance(restart, bool)


@FEW
@given(data=st.data())
def test_trainer_step(data):
    from elman import optim, train

    CASES["Trainer.step"] += 1
    rnn = elman.RNN(3, 4, output_size=5, seed=0)
    trainer = train.Trainer(rnn, optim.SGD(rnn.params, lr=0.1),
                            clip_norm=data.draw(st.sampled_from([None, 1.0])))
    T, B = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 2))
    x = data.draw(arrays((T, B, 3)), label="x")
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    targets = data.draw(st.sampled_from([rng.integers(0, 5, (T, B)), rng.integers(0, 6, (T, B)),
                                         np.zeros((T, B + 1), int), np.zeros((T, B))]))
    params_before = {k: v.copy() for k, v in rnn.params.items()}
    try:
        loss, h_n = trainer.step(x, targets)
    except (*ALLOWED_ERRORS, FloatingPointError) as e:  # documented: a non-finite loss
        assert str(e)
        for k, v in rnn.params.items():  # a refused step changes nothing
            np.testing.assert_array_equal(v, params_before[k])
        return
    assert isinstance(loss, float) and np.isfinite(loss) and h_n.shape == (1, B, 4)


@FEW
@given(data=st.data())
def test_optim_clipping(data):
    from elman import optim

    CASES["optim clipping"] += 1
    grads = {"a": data.draw(arrays((2, 3), bad_dtype_chance=False), label="a"),
             "b": data.draw(arrays((4,), bad_dtype_chance=False), label="b")}
    grads = {k: np.array(v, dtype=np.float64) if not isinstance(v, np.ndarray) else v
             for k, v in grads.items()}
    call_robustly(optim.clip_grad_value, grads, odd(data, "clip_value", 1.0), keep_inputs=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the norm of inf entries overflows
        try:
            total = optim.clip_grad_norm(grads, odd(data, "max_norm", 1.0),
                                         norm_type=odd(data, "norm_type", 2.0, np.inf, 1))
        except (*ALLOWED_ERRORS, FloatingPointError) as e:
            assert str(e)
            return
    assert isinstance(total, float)


@FEW
@given(data=st.data())
def test_slu(data):
    from elman import slu

    CASES["slu"] += 1
    win = odd(data, "win", 3, 1)
    sentence = data.draw(st.sampled_from([[0, 1, 2], np.array([3, 0]), [], np.array([[0, 1]]),
                                          np.array([0.5]), [5], [-2], "ab"]), label="sentence")
    windows = call_robustly(slu.contextwin, sentence, win)
    if windows is not None:
        assert len(windows) == len(list(sentence)) and all(len(w) == win for w in windows)
    model = slu.ElmanSLU(nh=3, nc=2, ne=4, de=2, cs=3, seed=0)
    labels = data.draw(st.sampled_from([None, [0, 1, 1], [0, 2, 0], [0], np.zeros(3, int)]))
    proba = call_robustly(model.predict_proba, sentence)
    if proba is not None and len(proba):
        np.testing.assert_allclose(np.asarray(proba).sum(axis=-1), 1, rtol=1e-6)
    if labels is not None:
        call_robustly(model.train, sentence, labels, odd(data, "learning_rate", 0.1),
                      keep_inputs=True)


@FEW
@given(data=st.data())
def test_stateful(data):
    from elman import stateful

    CASES["stateful"] += 1
    net = call_robustly(stateful.VanillaRecurrentNetwork, seed=0,
                        output_layout=data.draw(st.sampled_from(["seed", "rows", "cols"])),
                        hidden_activation=data.draw(st.sampled_from(HIDDEN + ["elu"])))
    if net is None:
        return
    x = data.draw(st.sampled_from([None, np.ones((3, 3)), np.ones(3), np.ones((3, 4))]))
    x = data.draw(arrays((3, 3))) if x is None else x
    out = call_robustly(net.forward_prop, x)
    if out is not None:
        assert np.asarray(out).shape[0] == 3


@FEW
@given(data=st.data())
def test_torch_interop(data):
    torch = pytest.importorskip("torch")

    CASES["torch interop"] += 1
    rnn = data.draw(models(), label="rnn")
    module = call_robustly(elman.to_torch, rnn)
    if module is None:  # torch.nn.RNN has no output layer, learned h0, sigmoid or identity
        assert (rnn.output_size is not None or rnn.learn_h0
                or rnn.activation not in ("tanh", "relu"))
        return
    back = elman.from_torch(module)
    for name, value in rnn.params.items():
        np.testing.assert_array_equal(back.params[name], value)
    for bad in (module.weight_ih_l0, torch.nn.LSTM(2, 3), object(), None):
        assert call_robustly(elman.from_torch, bad) is None


# --------------------------------------------------------------------------- #
# Bugs the fuzzing found, fixed: kept as regression tests
# --------------------------------------------------------------------------- #

def test_zero_dimensional_hs_is_refused_whatever_its_dtype():
    with pytest.raises(ValueError, match="hs must have at least 1 dimension"):
        elman.output_forward(np.array(2), np.ones((3, 1)), np.zeros(3))  # int: converted


@pytest.mark.parametrize("scores,activation,temperature", [
    ([-1.0, 2.0], "softmax", 1.0), ([0.2, 0.8], "tanh", 1.0), ([0.2, 0.8], "identity", -1.0)])
def test_next_token_distribution_checks_its_arguments(scores, activation, temperature):
    from elman import generate

    with pytest.raises(ValueError):
        generate.next_token_distribution(np.array(scores), activation, temperature)


def test_one_hot_checks_num_classes():
    from elman import train

    with pytest.raises(TypeError, match="num_classes"):
        train.one_hot(np.array([0, 2, 1]), "3")


def test_mask_of_a_single_position():
    logits = np.array([0.5, 1.0, -1.0], np.float32)
    want = ref.softmax_cross_entropy(logits, np.array(1), np.array(1.0, np.float32))
    loss, d = elman.softmax_cross_entropy(logits, np.array(1), np.array(1.0, np.float32))
    assert loss == pytest.approx(want[0], rel=1e-6)
    np.testing.assert_allclose(d, want[1], rtol=1e-6)
