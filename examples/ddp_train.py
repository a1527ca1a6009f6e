"""A character-level language model trained on several processes, or machines, with elman.torch.RNN
under PyTorch's DistributedDataParallel (gloo backend, CPUs only).

One machine, two processes:

    torchrun --nproc_per_node=2 examples/ddp_train.py --steps 200

N machines, P processes on each: run this on every machine, with R = 0 .. N-1 the machine's rank,
HOST the address of machine 0 (reachable from all the others) and PORT a free TCP port on it:

    torchrun --nnodes=N --node_rank=R --nproc_per_node=P \\
             --master_addr=HOST --master_port=PORT examples/ddp_train.py --steps 200

If gloo picks the wrong network interface, name the right one: GLOO_SOCKET_IFNAME=eth0 torchrun ...
Without torchrun (``python examples/ddp_train.py``) the script runs as a world of one process.

Every process reads the same text and draws its own share of the training windows
(DistributedSampler). During backward, DDP averages the gradients over all processes, so every
process takes the same Adam step and holds the same model: training on W processes with batch B
each is training on one process with batch W*B. Rank 0 prints the loss (averaged over the
processes), then a sample of generated text, and saves a checkpoint with ``--out``.
``--torch-rnn`` swaps in torch.nn.RNN, which elman.torch.RNN replaces without any other change.
"""

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import elman
import elman.torch
from elman.corpus import Vocabulary, default_corpus


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", help="a UTF-8 text file (default: elman's built-in corpus)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--seq-len", type=int, default=64, help="characters per training window")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per process and step")
    parser.add_argument("--embed", type=int, default=64, help="embedding size")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size")
    parser.add_argument("--layers", type=int, default=2, help="stacked RNN layers")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=25, help="steps between loss reports")
    parser.add_argument("--out", help="save the trained model here (rank 0)")
    parser.add_argument("--torch-rnn", action="store_true", help="use torch.nn.RNN instead")
    return parser.parse_args()


class CharLM(torch.nn.Module):
    """logits[B, T, V] of the next character from characters[B, T]."""

    def __init__(self, vocab_size, embed, hidden, layers, rnn_class):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, embed)
        self.rnn = rnn_class(embed, hidden, layers, batch_first=True)
        self.head = torch.nn.Linear(hidden, vocab_size)

    def forward(self, chars, h0=None):
        states, h_n = self.rnn(self.embed(chars), h0)
        return self.head(states), h_n


def start_process_group():
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in
    the environment), or form a world of one when the script runs without torchrun."""
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo")
    # The processes on this machine share its cores: each gets its share, for torch and elman.
    threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(threads)
    elman.set_num_threads(threads)
    return dist.get_rank(), dist.get_world_size()


def windows(text, vocab, seq_len):
    """The text cut into non-overlapping windows: inputs[N, seq_len] and the next characters,
    targets[N, seq_len]."""
    data = torch.from_numpy(vocab.encode(text))
    n = (len(data) - 1) // seq_len
    inputs = data[:n * seq_len].view(n, seq_len)
    targets = data[1:n * seq_len + 1].view(n, seq_len)
    return TensorDataset(inputs, targets)


def train(model, loader, sampler, args, rank):
    """args.steps Adam steps with gradient clipping; rank 0 reports the mean loss of all ranks."""
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, epoch, started = 0, 0, time.perf_counter()
    while step < args.steps:
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        for inputs, targets in loader:
            logits, _ = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     targets.reshape(-1))
            optimizer.zero_grad()
            loss.backward()  # DDP averages the gradients over all processes here
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step += 1
            if step % args.log_every == 0 or step == args.steps:
                mean_loss = loss.detach().clone()
                dist.all_reduce(mean_loss)  # every rank takes part; rank 0 prints
                if rank == 0:
                    elapsed = time.perf_counter() - started
                    print(f"step {step:5d}  loss {mean_loss.item() / dist.get_world_size():.3f}  "
                          f"{1000 * elapsed / step:.1f} ms/step", flush=True)
            if step == args.steps:
                break
        epoch += 1


@torch.no_grad()
def sample(model, vocab, first, length, generator):
    """length characters drawn one at a time from the model, starting after the text first."""
    logits, h = model(torch.from_numpy(vocab.encode(first))[None])
    chars = []
    for _ in range(length):
        probabilities = torch.softmax(logits[0, -1], dim=-1)
        index = torch.multinomial(probabilities, 1, generator=generator)
        chars.append(vocab.chars[index.item()])
        logits, h = model(index[None], h)
    return first + "".join(chars)


def main():
    args = parse_args()
    rank, world_size = start_process_group()
    try:
        if args.text:
            with open(args.text, encoding="utf-8") as f:
                text = f.read()
        else:
            text = default_corpus()
        vocab = Vocabulary.from_text(text)
        dataset = windows(text, vocab, args.seq_len)
        sampler = DistributedSampler(dataset, shuffle=True, seed=args.seed, drop_last=True)
        loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)

        torch.manual_seed(args.seed)  # DDP also copies rank 0's parameters to all at the start
        rnn_class = torch.nn.RNN if args.torch_rnn else elman.torch.RNN
        model = DistributedDataParallel(
            CharLM(len(vocab), args.embed, args.hidden, args.layers, rnn_class))
        if rank == 0:
            print(f"{world_size} process(es), {torch.get_num_threads()} thread(s) each, "
                  f"{rnn_class.__module__}.{rnn_class.__name__}, {len(text)} characters, "
                  f"vocabulary {len(vocab)}, {len(dataset)} windows of {args.seq_len}", flush=True)
        train(model, loader, sampler, args, rank)

        if rank == 0:
            print("\n" + sample(model.module, vocab, "The ", 300,
                                torch.Generator().manual_seed(args.seed)))
            if args.out:
                torch.save({"model": model.module.state_dict(), "chars": "".join(vocab.chars),
                            "args": vars(args)}, args.out)
                print(f"saved {args.out}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
