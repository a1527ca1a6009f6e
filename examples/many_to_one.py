"""Many-to-one (T_x > 1, T_y = 1): read a whole sequence, give one answer.

Seed 004's example of this shape is sentiment classification. Here: sequences of 5 to 25 symbols
out of three (a, b, c), of different lengths in one batch; the answer is the symbol that occurs
most often (ties are never drawn). The network has to count as it reads.

The batch is padded to its longest sequence and ``rnn.forward(x, lengths=...)`` is told where
each one ends: the model's output there is each sequence's answer, and a mask on the
cross-entropy keeps only that step, so the padding neither trains nor is scored.

Trains an elman.RNN with Adam and reports the accuracy on fresh sequences (held out).

    python examples/many_to_one.py [--steps N] [--seed S]
"""

import argparse

import numpy as np

from elman.losses import cross_entropy
from elman.model import RNN
from elman.optim import Adam
from elman.train import Trainer, one_hot

SYMBOLS = 3
MIN_LENGTH, MAX_LENGTH = 5, 25


def make_batch(rng, batch_size):
    """x[T, B, 3] one-hot, padded with zeros; lengths[B]; labels[B], the majority symbol."""
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=batch_size)
    tokens = rng.integers(0, SYMBOLS, size=(MAX_LENGTH, batch_size))
    inside = np.arange(MAX_LENGTH)[:, None] < lengths  # [T, B] True within each sequence
    counts = np.stack([np.sum((tokens == s) & inside, axis=0) for s in range(SYMBOLS)])  # [3, B]
    top_two = np.sort(counts, axis=0)[-2:]
    keep = top_two[1] > top_two[0]  # a unique majority
    x = one_hot(tokens, SYMBOLS) * inside[..., None]
    return x[:, keep], lengths[keep], counts.argmax(axis=0)[keep]


def answer_step_mask(lengths):
    """mask[T, B]: 1 at each sequence's last step, where its answer is read, 0 elsewhere."""
    return (np.arange(MAX_LENGTH)[:, None] == lengths - 1).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=800, help="training steps (default 800)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    rnn = RNN(SYMBOLS, 32, output_size=SYMBOLS, seed=args.seed)
    trainer = Trainer(rnn, Adam(rnn.params, lr=1e-2), cross_entropy, clip_norm=5.0)
    for step in range(1, args.steps + 1):
        x, lengths, labels = make_batch(rng, batch_size=64)
        targets = np.broadcast_to(labels, (MAX_LENGTH, len(labels)))  # read only where mask = 1
        loss, _ = trainer.step(x, targets, lengths=lengths, mask=answer_step_mask(lengths))
        if step % max(1, args.steps // 5) == 0:
            print(f"step {step:4d}  loss {loss:.3f}")

    x, lengths, labels = make_batch(rng, batch_size=4000)  # held out
    logits, _ = rnn(x, lengths=lengths)
    answers = logits[lengths - 1, np.arange(len(lengths))].argmax(axis=-1)  # each one's last step
    chance = np.bincount(labels, minlength=SYMBOLS).max() / len(labels)  # the commonest label
    print(f"held-out accuracy: {np.mean(answers == labels):.3f} (chance {chance:.3f})")


if __name__ == "__main__":
    main()
