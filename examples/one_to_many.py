"""One-to-many (T_x = 1, T_y > 1): from one input, generate a whole sequence.

Seed 004's example of this shape is music generation. Here: K "composers", each with a melody of
MELODY_LENGTH notes (out of NOTES). The network sees one noisy fingerprint of a composer at the
first step, nothing after it, and must play that composer's melody, one note per step. It has to
recognise the composer through the noise and then keep that memory in its hidden state for the
whole melody.

    x[0] = fingerprint[k] + noise,  x[1:] = 0          ->   y[t] = melody[k][t]

Trains an elman.RNN with Adam on the softmax cross-entropy of every step, then reports the note
accuracy on fresh noisy fingerprints (held out: never seen in training).

    python examples/one_to_many.py [--steps N] [--seed S]
"""

import argparse

import numpy as np

from elman.losses import cross_entropy
from elman.model import RNN
from elman.optim import Adam
from elman.train import Trainer

COMPOSERS = 8  # K classes
NOTES = 10  # output alphabet
MELODY_LENGTH = 12  # T_y
FINGERPRINT = 16  # D, input features at the first step
NOISE = 0.9  # standard deviation of the noise added to a fingerprint


def make_task(rng):
    """The fixed task: fingerprints[K, D] and melodies[K, T] of note indices."""
    fingerprints = rng.standard_normal((COMPOSERS, FINGERPRINT))
    melodies = rng.integers(0, NOTES, size=(COMPOSERS, MELODY_LENGTH))
    return fingerprints, melodies


def make_batch(rng, fingerprints, melodies, batch_size):
    """x[T, B, D]: a noisy fingerprint at t = 0, zeros after; targets[T, B]: the melodies."""
    composer = rng.integers(0, COMPOSERS, size=batch_size)
    x = np.zeros((MELODY_LENGTH, batch_size, FINGERPRINT), dtype=np.float32)
    x[0] = fingerprints[composer] + NOISE * rng.standard_normal((batch_size, FINGERPRINT))
    return x, melodies[composer].T  # targets [T, B]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    fingerprints, melodies = make_task(rng)
    rnn = RNN(FINGERPRINT, 64, output_size=NOTES, seed=args.seed)  # identity output: logits
    trainer = Trainer(rnn, Adam(rnn.params, lr=1e-2), cross_entropy, clip_norm=5.0)
    for step in range(1, args.steps + 1):
        x, targets = make_batch(rng, fingerprints, melodies, batch_size=64)
        loss, _ = trainer.step(x, targets)
        if step % max(1, args.steps // 5) == 0:
            print(f"step {step:4d}  loss {loss:.3f}")

    x, targets = make_batch(rng, fingerprints, melodies, batch_size=2000)  # held out
    logits, _ = rnn(x)
    played = logits.argmax(axis=-1)  # [T, B]
    print(f"example: composer's melody {targets[:, 0].tolist()}, played {played[:, 0].tolist()}")
    print(f"whole melodies right: {np.mean(np.all(played == targets, axis=0)):.3f}")
    print(f"held-out accuracy: {np.mean(played == targets):.3f} (chance {1 / NOTES:.3f})")


if __name__ == "__main__":
    main()
