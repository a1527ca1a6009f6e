"""elman.train: one training step, truncated BPTT that carries the state, and the char-LM loop."""

import numpy as np
import pytest

from elman.corpus import Vocabulary, default_corpus
from elman.losses import cross_entropy, mse
from elman.model import RNN
from elman.optim import SGD, Adam
from elman.train import CharBatches, Trainer, one_hot, train_char_lm, train_tbptt

V, H = 6, 8


def token_model(num_layers=1, batch_first=False, seed=0):
    return RNN(V, H, num_layers=num_layers, output_size=V, batch_first=batch_first, dtype="float64", seed=seed)


def random_tokens(rng, N, B):
    inputs = rng.integers(0, V, size=(N, B))
    return one_hot(inputs, V, dtype=np.float64), rng.integers(0, V, size=(N, B))


def frozen_trainer(rnn):
    """A Trainer whose updates change nothing (lr = 0): chunked and whole passes must then agree."""
    return Trainer(rnn, SGD(rnn.params, lr=0.0))


@pytest.mark.parametrize("num_layers", [1, 2])
def test_tbptt_chunks_compute_what_one_long_forward_computes(num_layers, rng):
    rnn = token_model(num_layers)
    x, targets = random_tokens(rng, N=12, B=3)
    h0 = rng.standard_normal((num_layers, 3, H))
    losses, h_n = train_tbptt(frozen_trainer(rnn), x, targets, seq_len=5, h0=h0)  # chunks 5, 5, 2
    out, h_long = rnn.forward(x, h0)
    expected = [cross_entropy(out[s:s + 5], targets[s:s + 5])[0] for s in (0, 5, 10)]
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    np.testing.assert_allclose(h_n, h_long, rtol=1e-12, atol=1e-14)


def test_tbptt_gradient_stops_at_the_chunk_boundary(rng):
    rnn = token_model()
    x, targets = random_tokens(rng, N=10, B=2)
    train_tbptt(frozen_trainer(rnn), x, targets, seq_len=4)  # chunks 0:4, 4:8, 8:10
    tbptt_grads = {k: v.copy() for k, v in rnn.grads.items()}  # those of the last chunk

    _, h_8 = rnn.forward(x[:8])  # the state entering the last chunk, a constant for its gradient
    out, _ = rnn.forward(x[8:], h_8)
    rnn.backward(cross_entropy(out, targets[8:])[1])
    for name, grad in rnn.grads.items():
        np.testing.assert_allclose(tbptt_grads[name], grad, rtol=1e-12, atol=1e-15, err_msg=name)


def test_tbptt_batch_first_cuts_along_axis_1(rng):
    rnn = token_model(batch_first=True)
    x, targets = random_tokens(rng, N=9, B=2)
    x_bf, targets_bf = x.transpose(1, 0, 2), targets.T
    mask = (rng.random((2, 9)) < 0.7).astype(np.float64)
    losses, h_n = train_tbptt(frozen_trainer(rnn), x_bf, targets_bf, seq_len=3, mask=mask)
    out, h_long = rnn.forward(x_bf)
    expected = [cross_entropy(out[:, s:s + 3], targets_bf[:, s:s + 3], mask=mask[:, s:s + 3])[0] for s in (0, 3, 6)]
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    np.testing.assert_allclose(h_n, h_long, rtol=1e-12, atol=1e-14)


def test_tbptt_learns_and_returns_one_loss_per_chunk(rng):
    # A regression RNN learns to echo its input with MSE: the loss must fall.
    rnn = RNN(1, 16, output_size=1, dtype="float64", seed=1)
    trainer = Trainer(rnn, Adam(rnn.params, lr=0.02), loss=mse, clip_norm=1.0)
    x = rng.standard_normal((400, 4, 1))
    losses, h_n = train_tbptt(trainer, x, x, seq_len=20)
    assert len(losses) == 20 and h_n.shape == (1, 4, 16)
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:2])


def test_trainer_clips_before_the_update(rng):
    rnn = token_model()
    before = {k: v.copy() for k, v in rnn.params.items()}
    trainer = Trainer(rnn, SGD(rnn.params, lr=1.0), clip_norm=1e-3)
    x, targets = random_tokens(rng, N=5, B=2)
    trainer.step(x, targets)
    assert trainer.grad_norm > 1e-3
    moved = np.sqrt(sum(np.sum((rnn.params[k] - before[k]) ** 2) for k in before))
    assert moved == pytest.approx(1e-3, rel=1e-4)  # lr * clipped norm


def test_trainer_clip_value(rng):
    rnn = token_model()
    before = {k: v.copy() for k, v in rnn.params.items()}
    trainer = Trainer(rnn, SGD(rnn.params, lr=1.0), clip_value=1e-4)
    x, targets = random_tokens(rng, N=5, B=2)
    trainer.step(x, targets)
    assert trainer.grad_norm is None
    for k in before:
        assert np.abs(rnn.params[k] - before[k]).max() <= 1e-4 * (1 + 1e-12)


def test_trainer_refuses_a_diverged_loss_and_keeps_the_parameters(rng):
    rnn = token_model()
    trainer = Trainer(rnn, SGD(rnn.params, lr=1.0))
    before = {k: v.copy() for k, v in rnn.params.items()}
    x, targets = random_tokens(rng, N=3, B=2)
    x[1, 0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="the loss is nan: training diverged"):
        trainer.step(x, targets)
    for k in before:
        np.testing.assert_array_equal(rnn.params[k], before[k])


def test_trainer_and_tbptt_argument_errors(rng):
    rnn = token_model()
    with pytest.raises(ValueError, match="optimizer must be built on this model's parameters"):
        Trainer(rnn, SGD(token_model().params))
    with pytest.raises(TypeError, match="loss must be callable"):
        Trainer(rnn, SGD(rnn.params), loss="mse")
    with pytest.raises(ValueError, match="clip_norm must be a finite number >= 0"):
        Trainer(rnn, SGD(rnn.params), clip_norm=-1.0)
    trainer = Trainer(rnn, SGD(rnn.params))
    x, targets = random_tokens(rng, N=4, B=2)
    with pytest.raises(ValueError, match="seq_len must be a positive int"):
        train_tbptt(trainer, x, targets, seq_len=0)
    with pytest.raises(ValueError, match=r"targets has shape \(3, 2\); its axis 0 must have x's 4 time steps"):
        train_tbptt(trainer, x, targets[:3], seq_len=2)
    bidirectional = RNN(V, H, bidirectional=True, output_size=V, dtype="float64", seed=0)
    with pytest.raises(ValueError, match="truncated BPTT needs a unidirectional RNN"):
        train_tbptt(Trainer(bidirectional, SGD(bidirectional.params)), x, targets, seq_len=2)


# --------------------------------------------------------------------------- #
# one-hot and char-LM batches
# --------------------------------------------------------------------------- #

def test_one_hot():
    np.testing.assert_array_equal(one_hot([[2, 0]], 3), [[[0, 0, 1], [1, 0, 0]]])
    buffer = np.full((2, 3), 7.0)
    assert one_hot([1, 2], 3, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, [[0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\), got values in \[0, 3\]"):
        one_hot([0, 3], 3)
    with pytest.raises(TypeError, match="indices must be integers"):
        one_hot([0.5], 3)


def test_char_batches_read_streams_side_by_side():
    tokens = np.arange(23)
    batches = CharBatches(tokens, batch_size=2, seq_len=3)
    # pass 0: 22 usable inputs -> 11 per stream -> 9 (whole chunks); stream 1 starts at token 9
    inputs, targets, restart = next(batches)
    assert restart
    np.testing.assert_array_equal(inputs, [[0, 9], [1, 10], [2, 11]])
    np.testing.assert_array_equal(targets, inputs + 1)
    next(batches)
    inputs, _, restart = next(batches)
    assert not restart
    np.testing.assert_array_equal(inputs[:, 0], [6, 7, 8])
    inputs, targets, restart = next(batches)  # pass 1 starts one token later
    assert restart and batches.passes == 1
    np.testing.assert_array_equal(inputs[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(targets, inputs + 1)
    with pytest.raises(ValueError, match="5 tokens are too few for batch_size=2 and seq_len=3"):
        CharBatches(np.arange(5), batch_size=2, seq_len=3)


def test_char_lm_on_the_default_corpus_lowers_the_loss():
    text = default_corpus()[:200_000]
    vocab = Vocabulary.from_text(text)
    rnn = RNN(len(vocab), 64, output_size=len(vocab), seed=0)
    trainer = Trainer(rnn, Adam(rnn.params, lr=1e-2), clip_norm=5.0)
    losses = list(train_char_lm(trainer, vocab.encode(text), len(vocab), steps=150, seq_len=32, batch_size=16))
    assert losses[0] == pytest.approx(np.log(len(vocab)), rel=0.05)  # an untrained model guesses uniformly
    assert np.mean(losses[-20:]) < 3.0  # chance is ln(V) ~ 4.6 nats per character


def test_char_lm_checks_the_model():
    rnn = RNN(5, 4, output_size=3, seed=0)
    with pytest.raises(ValueError, match="input_size = output_size = vocab_size = 5"):
        next(train_char_lm(Trainer(rnn, SGD(rnn.params)), np.arange(50) % 5, 5, steps=1, seq_len=4, batch_size=2))


# --------------------------------------------------------------------------- #
# the default corpus and the vocabulary
# --------------------------------------------------------------------------- #

def test_default_corpus_is_hundreds_of_kilobytes_and_the_same_every_time():
    first = default_corpus()
    default_corpus.cache_clear()
    assert default_corpus() == first  # rebuilt from the modules, not only cached
    assert len(first) > 200_000
    assert "Return" in first and "\n\n" in first


def test_vocabulary_round_trip():
    vocab = Vocabulary.from_text("hello, world\n")
    assert vocab.chars == sorted(set("hello, world\n"))
    indices = vocab.encode("world, hello")
    assert indices.dtype == np.int64
    assert vocab.decode(indices) == "world, hello"
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(ValueError, match="character 'X' is not in the vocabulary"):
        vocab.encode("X")
    with pytest.raises(ValueError, match="not a vocabulary"):
        Vocabulary.from_json('{"letters": "ab"}')
    with pytest.raises(ValueError, match="must be distinct"):
        Vocabulary("aa")


@pytest.mark.parametrize("indices, shown", [([-1], "index -1 .at position 0."), ([0, 4], "index 4 .at position 1."),
                                            (np.array([[0], [2 ** 40]]), "index 1099511627776 .at position 1.")])
def test_vocabulary_decode_refuses_indices_outside_it(indices, shown):
    vocab = Vocabulary("abcd")
    with pytest.raises(ValueError, match=f"{shown} is outside the vocabulary's 0..3"):
        vocab.decode(indices)
    with pytest.raises(TypeError, match="indices must be integers, got dtype float64"):
        vocab.decode([1.7])
    assert vocab.decode([]) == "" and vocab.decode(np.array([[3, 0]], np.uint8)) == "da"


def test_vocabulary_characters_must_be_sorted_as_documented():
    with pytest.raises(ValueError, match="must be sorted by code point, got 'c' before 'b'"):
        Vocabulary("cba")
    with pytest.raises(ValueError, match="must be sorted"):
        Vocabulary.from_json('{"chars": "ba"}')
    vocab = Vocabulary(sorted("cba"))
    assert vocab.chars == ["a", "b", "c"] and vocab.encode("cab").tolist() == [2, 0, 1]
