"""elman.torch.RNN under DistributedDataParallel: 2 processes equal 1 process on the whole batch.

Two worker processes (this file run as a script, with torchrun's environment variables: RANK,
WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT) train a small language model
(embedding + elman.torch.RNN + linear + cross-entropy, Adam) with DDP on the gloo backend, each on
its half of every batch. DDP averages their gradients, which for equal halves and a mean loss is
the gradient of the whole batch, so both must end with the parameters that one process gets by
training on the whole batches (float64, to rounding). Every wait has a timeout: the test fails
rather than hangs.
"""

import datetime
import os
import socket
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
elman_torch = pytest.importorskip("elman.torch")

VOCAB, EMBED, HIDDEN, LAYERS = 11, 5, 7, 2
T, B_PER_RANK, STEPS = 6, 3, 4
WORLD_SIZE = 2
TIMEOUT_SECONDS = 50  # for the whole run; the test budget is 60 s


class LanguageModel(torch.nn.Module):
    """logits[T, B, VOCAB] of the next token, from tokens[T, B]."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, EMBED)
        self.rnn = elman_torch.RNN(EMBED, HIDDEN, LAYERS, bidirectional=False)
        self.head = torch.nn.Linear(HIDDEN, VOCAB)

    def forward(self, tokens):
        states, _ = self.rnn(self.embed(tokens))
        return self.head(states)


def make_model():
    """The same initial float64 model in every process."""
    torch.manual_seed(0)
    return LanguageModel().double()


def whole_batches():
    """STEPS batches of (tokens[T, B], targets[T, B]) with B = WORLD_SIZE * B_PER_RANK."""
    generator = torch.Generator().manual_seed(1)
    shape = (T, WORLD_SIZE * B_PER_RANK)
    return [(torch.randint(0, VOCAB, shape, generator=generator),
             torch.randint(0, VOCAB, shape, generator=generator)) for _ in range(STEPS)]


def train(model, batches):
    """Adam steps on mean cross-entropy; returns the model."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for tokens, targets in batches:
        logits = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def worker(out_path):
    """One DDP rank (configured by torchrun's environment variables): trains on its half of each
    batch and saves its final parameters to out_path."""
    import elman

    torch.set_num_threads(1)  # two processes share two cores
    elman.set_num_threads(1)
    torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=30))
    try:
        rank = torch.distributed.get_rank()
        mine = slice(rank * B_PER_RANK, (rank + 1) * B_PER_RANK)
        batches = [(tokens[:, mine], targets[:, mine]) for tokens, targets in whole_batches()]
        model = torch.nn.parallel.DistributedDataParallel(make_model())
        train(model, batches)
        torch.save(model.module.state_dict(), out_path)
    finally:
        torch.distributed.destroy_process_group()


def free_port():
    """A TCP port on the loopback interface that nothing listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workers(tmp_path):
    """Start WORLD_SIZE ranks of this file on loopback; returns their output paths."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               WORLD_SIZE=str(WORLD_SIZE), OMP_NUM_THREADS="1")
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback, whatever the hostname resolves to
    paths = [tmp_path / f"rank{rank}.pt" for rank in range(WORLD_SIZE)]
    processes = [subprocess.Popen([sys.executable, __file__, str(path)],
                                  env=dict(env, RANK=str(rank)), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for rank, path in enumerate(paths)]
    try:
        logs = [p.communicate(timeout=TIMEOUT_SECONDS)[0] for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        logs = [p.communicate()[0] for p in processes]
        pytest.fail(f"DDP workers did not finish in {TIMEOUT_SECONDS} s:\n" + "\n".join(logs))
    for rank, (p, log) in enumerate(zip(processes, logs)):
        assert p.returncode == 0, f"rank {rank} failed (exit code {p.returncode}):\n{log}"
    return paths


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available")
def test_ddp_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    paths = run_workers(tmp_path)
    expected = train(make_model(), whole_batches()).state_dict()
    initial = make_model().state_dict()
    for rank, path in enumerate(paths):
        trained = torch.load(path)
        assert trained.keys() == expected.keys()
        for name, value in expected.items():
            assert not torch.equal(value, initial[name]), f"{name} did not train"
            torch.testing.assert_close(trained[name], value, rtol=1e-10, atol=1e-12,
                                       msg=lambda m: f"rank {rank}, {name}: {m}")


if __name__ == "__main__":
    worker(sys.argv[1])
