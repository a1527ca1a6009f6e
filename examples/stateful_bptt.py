"""Seed 004's stateful RNN (elman.stateful.VanillaRecurrentNetwork) trained by truncated BPTT
with gradient clipping, on sine waves it generates itself.

Each of B parallel streams is a sine wave with its own frequency and phase; at every step the
network sees the current value and must predict the next one. One value does not say whether
the wave is rising or falling, nor how fast: the network has to keep that in its hidden state.
The streams are cut into chunks of T steps; each chunk is one `train_bptt` call (forward over
the chunk, backpropagation through its T steps, gradients clipped by value, an SGD step), and
the hidden state carries over from one chunk to the next. The loss printed falls as it learns.

At the end the trained network is run one step per `forward_prop` call, as in the seed, on new
waves, and compared with the naive forecast "the next value equals the current one".

    python examples/stateful_bptt.py
    python examples/stateful_bptt.py --chunks 100 --hidden 16     # a quick run
"""

import argparse
import time

import numpy as np

from elman.stateful import VanillaRecurrentNetwork


def sine_streams(rng, batch, steps):
    """values[steps + 1, batch, 1]: one sine wave per stream, random frequency and phase."""
    omega = rng.uniform(0.15, 0.45, batch)  # radians per step
    phase = rng.uniform(0, 2 * np.pi, batch)
    t = np.arange(steps + 1)[:, None]
    return np.sin(omega * t + phase)[:, :, None]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=600, help="training chunks (SGD steps)")
    parser.add_argument("--chunk-length", type=int, default=25, help="T, steps per BPTT chunk")
    parser.add_argument("--batch", type=int, default=32, help="B, parallel streams")
    parser.add_argument("--hidden", type=int, default=32, help="H, hidden units")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="clip gradients to [-clip, clip]")
    parser.add_argument("--print-every", type=int, default=None, help="chunks between reports")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    net = VanillaRecurrentNetwork(input_size=1, hidden_size=args.hidden, output_size=1,
                                  batch_size=args.batch, output_layout="rows", seed=args.seed)
    # The seed draws N(0, 1) weights; with more than a few units they saturate tanh, so scale
    # them by 1/sqrt(fan-in) before training.
    net.W_hh /= np.sqrt(args.hidden)
    net.W_hy /= np.sqrt(args.hidden)
    net.Bh *= 0.1

    T = args.chunk_length
    waves = sine_streams(rng, args.batch, args.chunks * T)  # one long wave per stream
    every = args.print_every or max(args.chunks // 10, 1)
    start, recent = time.perf_counter(), []
    for chunk in range(args.chunks):
        window = waves[chunk * T: (chunk + 1) * T + 1]  # T inputs and the T values after them
        recent.append(net.train_bptt(window[:-1], window[1:], args.lr, args.clip))
        if (chunk + 1) % every == 0:
            print(f"chunk {chunk + 1:4d}: mean squared error {np.mean(recent):.5f} "
                  f"({time.perf_counter() - start:.1f} s)")
            recent = []

    # New waves, one forward_prop call per step, as the seed runs its network.
    test = sine_streams(rng, args.batch, 200)
    net.reset_state()
    predictions = np.array([net.forward_prop(x) for x in test[:-1]])
    warm_up = 20  # the state needs a few steps to pick up a new wave's frequency and phase
    network_mse = np.mean((predictions[warm_up:] - test[1 + warm_up:]) ** 2)
    naive_mse = np.mean((test[warm_up:-1] - test[1 + warm_up:]) ** 2)
    print(f"new waves, one step per forward_prop call: network error {network_mse:.5f}, "
          f"'next = current' error {naive_mse:.5f}")
    return network_mse, naive_mse


if __name__ == "__main__":
    main()
