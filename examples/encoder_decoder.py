"""Many-to-many, different lengths (T_x != T_y): an encoder-decoder of two RNNs.

Seed 004's example of this shape is machine translation. Here: read a sequence of 3 to 8 symbols
and write it reversed, followed by an end-of-sequence token, so the output is one step longer
than the input and its length is not fixed in advance.

* The encoder RNN reads the input (a padded batch; ``lengths`` says where each sequence ends)
  and its final state ``h_n`` sums up the whole sequence.
* The decoder RNN starts from that state (``h0 = h_n``) and writes one token per step. In
  training it reads the correct previous token (teacher forcing: GO, y_0, y_1, ...); at test
  time it reads its own previous answer, one step at a time (``rnn.stream``).
* Backward runs the other way: the decoder's gradient with respect to its initial state,
  ``decoder.dh0``, is the gradient with respect to the encoder's final state, so it goes into
  ``encoder.backward(None, d_h_n=decoder.dh0)`` (the encoder's outputs are not used: None).

Trains both with Adam and reports the token accuracy of greedy decoding on fresh sequences.

    python examples/encoder_decoder.py [--steps N] [--seed S]
"""

import argparse

import numpy as np

from elman.losses import cross_entropy
from elman.model import RNN
from elman.optim import Adam, clip_grad_norm
from elman.train import one_hot

SYMBOLS = 8  # input symbols 0..7
GO = SYMBOLS  # decoder input token 8: "start writing"
EOS = SYMBOLS  # decoder output token 8: "done"
MIN_LENGTH, MAX_LENGTH = 3, 8
HIDDEN = 128


def make_batch(rng, batch_size):
    """The encoder's x[T_x, B, 8] and lengths[B]; the decoder's inputs[T_y, B, 9] (GO, then the
    answer shifted by one), targets[T_y, B] (the reversed sequence, then EOS) and mask[T_y, B]."""
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=batch_size)
    tokens = rng.integers(0, SYMBOLS, size=(MAX_LENGTH, batch_size))
    steps = np.arange(MAX_LENGTH)[:, None]
    inside = steps < lengths  # [T_x, B]
    backwards = np.clip(lengths - 1 - steps, 0, None)  # [T_x, B] step read at each step
    reversed_tokens = tokens[backwards, np.arange(batch_size)]  # [T_x, B]
    targets = np.full((MAX_LENGTH + 1, batch_size), EOS)
    targets[:MAX_LENGTH] = np.where(inside, reversed_tokens, EOS)  # padding past EOS is masked
    decoder_inputs = np.concatenate([np.full((1, batch_size), GO), targets[:-1]])  # [T_y, B]
    mask = (np.arange(MAX_LENGTH + 1)[:, None] <= lengths).astype(np.float32)  # answer + EOS
    x = one_hot(tokens, SYMBOLS) * inside[..., None]
    return x, lengths, one_hot(decoder_inputs, SYMBOLS + 1), targets, mask


def train_step(encoder, decoder, optimizers, batch):
    x, lengths, decoder_inputs, targets, mask = batch
    _, h = encoder(x, lengths=lengths)  # h[1, B, H]: each sequence's state at its own end
    logits, _ = decoder(decoder_inputs, h0=h, lengths=lengths + 1)
    loss, d_logits = cross_entropy(logits, targets, mask=mask)
    decoder.backward(d_logits)
    encoder.backward(None, d_h_n=decoder.dh0)  # the gradient crosses from decoder to encoder
    clip_grad_norm(list(encoder.grads.values()) + list(decoder.grads.values()), max_norm=5.0)
    optimizers[0].step(encoder.grads)
    optimizers[1].step(decoder.grads)
    return loss


def greedy_decode(encoder, decoder, x, lengths):
    """tokens[T_y, B]: the decoder fed its own previous answer, from the encoder's final state."""
    _, h = encoder(x, lengths=lengths)
    stream = decoder.stream(x.shape[1], h0=h)
    token = np.full(x.shape[1], GO)
    written = []
    for _ in range(MAX_LENGTH + 1):
        logits = stream.step(one_hot(token, SYMBOLS + 1))
        token = logits.argmax(axis=-1)
        written.append(token)
    return np.array(written)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    encoder = RNN(SYMBOLS, HIDDEN, seed=args.seed)
    decoder = RNN(SYMBOLS + 1, HIDDEN, output_size=SYMBOLS + 1, seed=args.seed + 1)
    optimizers = (Adam(encoder.params, lr=3e-3), Adam(decoder.params, lr=3e-3))
    for step in range(1, args.steps + 1):
        loss = train_step(encoder, decoder, optimizers, make_batch(rng, batch_size=64))
        if step % max(1, args.steps // 5) == 0:
            print(f"step {step:4d}  loss {loss:.3f}")

    x, lengths, _, targets, mask = make_batch(rng, batch_size=2000)  # held out
    written = greedy_decode(encoder, decoder, x, lengths)
    correct = (written == targets) | (mask == 0)  # nothing is asked past EOS
    given = x[:, 0].argmax(axis=-1)[:lengths[0]].tolist()
    print(f"example: {given} -> {written[:lengths[0] + 1, 0].tolist()} (8 = end)")
    print(f"whole sequences right: {np.mean(np.all(correct, axis=0)):.3f}")
    token_accuracy = np.sum(correct * mask) / np.sum(mask)
    print(f"held-out accuracy: {token_accuracy:.3f} (chance {1 / (SYMBOLS + 1):.3f})")


if __name__ == "__main__":
    main()
