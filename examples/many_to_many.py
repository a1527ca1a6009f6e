"""Many-to-many, same lengths (T_x = T_y): one output for every input step.

Seed 004's example of this shape is named-entity recognition, a tag per word. Here: an echo with
a delay. The input is a stream of random symbols; at step t the network must output the symbol it
read DELAY steps earlier, so it has to keep the last DELAY symbols, in order, in its hidden state.
The first DELAY steps have nothing to echo yet: a mask removes them from the loss and the score.

    y[t] = x[t - DELAY]   for t >= DELAY

Trains an elman.RNN with Adam on the per-step softmax cross-entropy and reports the per-step
accuracy on fresh streams (held out).

    python examples/many_to_many.py [--steps N] [--seed S]
"""

import argparse

import numpy as np

from elman.losses import cross_entropy
from elman.model import RNN
from elman.optim import Adam
from elman.train import Trainer, one_hot

SYMBOLS = 8
DELAY = 5
STEPS_PER_SEQUENCE = 20


def make_batch(rng, batch_size):
    """x[T, B, SYMBOLS] one-hot, targets[T, B] (the input DELAY steps back), mask[T, B]."""
    tokens = rng.integers(0, SYMBOLS, size=(STEPS_PER_SEQUENCE, batch_size))
    targets = np.zeros_like(tokens)
    targets[DELAY:] = tokens[:-DELAY]
    mask = np.zeros(tokens.shape, dtype=np.float32)
    mask[DELAY:] = 1  # nothing to echo before step DELAY
    return one_hot(tokens, SYMBOLS), targets, mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    rnn = RNN(SYMBOLS, 64, output_size=SYMBOLS, seed=args.seed)
    trainer = Trainer(rnn, Adam(rnn.params, lr=5e-3), cross_entropy, clip_norm=5.0)
    for step in range(1, args.steps + 1):
        x, targets, mask = make_batch(rng, batch_size=32)
        loss, _ = trainer.step(x, targets, mask=mask)
        if step % max(1, args.steps // 5) == 0:
            print(f"step {step:4d}  loss {loss:.3f}")

    x, targets, mask = make_batch(rng, batch_size=1000)  # held out
    logits, _ = rnn(x)
    correct = (logits.argmax(axis=-1) == targets)[DELAY:]
    print(f"input    {x[:, 0].argmax(axis=-1).tolist()}")
    print(f"output   {logits[:, 0].argmax(axis=-1).tolist()}  (the first {DELAY} are not scored)")
    print(f"held-out accuracy: {np.mean(correct):.3f} (chance {1 / SYMBOLS:.3f})")


if __name__ == "__main__":
    main()
