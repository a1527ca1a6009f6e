"""python -m elman: train, sample and bench; every user mistake is one line on stderr and exit 2."""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from elman import cli
from elman.model import RNN

TEXT = ("the quick brown fox jumps over the lazy dog. " * 8 + "\n") * 10  # ~3.7 KB, 29 characters
TINY = ["--steps", "12", "--hidden", "16", "--seq-len", "16", "--batch", "4", "--sample-every", "6",
        "--sample-length", "30"]


def run(argv, capsys):
    """(exit code, stdout, stderr) of the command line run in this process."""
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own exits (usage errors, --help)
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, text_file, capsys):
    """A tiny model trained on the fox text: its path."""
    model = tmp_path / "fox.npz"
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(model)], capsys)
    assert code == 0, err
    return model


def test_train_writes_model_vocabulary_and_loss_curve(trained, capsys):
    assert RNN.load(trained).input_size == len(set(TEXT))
    vocab_file = trained.with_name("fox.vocab.json")
    assert vocab_file.read_text().startswith('{"chars": "\\n .')
    png = trained.with_name("fox.loss.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not png.exists()
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_prints_samples_progress_and_a_summary(tmp_path, text_file, capsys):
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(tmp_path / "m.npz")], capsys)
    assert code == 0
    assert out.count("----- sample after step") == 2  # steps 6 and 12
    summary = re.fullmatch(r"loss ([\d.]+) -> ([\d.]+) \(nats per character, mean of the last 50 steps\) "
                           r"after 12 steps; "
                           r"768 characters in [\d.]+ s \([\d,]+ characters/s\)", out.splitlines()[-1])
    assert summary, out.splitlines()[-1]
    assert float(summary[1]) == pytest.approx(np.log(len(set(TEXT))), rel=0.05)  # untrained: uniform
    assert float(summary[2]) < float(summary[1])
    assert "step 12/12" in err and "chars/s" in err  # the last progress line (stderr is no terminal)
    assert f"wrote {tmp_path / 'm.npz'}" in err


def test_train_on_the_default_corpus(tmp_path, capsys):
    code, out, err = run(["train", "--steps", "3", "--hidden", "8", "--seq-len", "8", "--batch", "2",
                          "--sample-every", "0", "--out", str(tmp_path / "d.npz")], capsys)
    assert code == 0, err
    assert "the docstrings of" in err and "standard-library modules" in err
    assert "after 3 steps" in out


def test_sample_prints_the_prime_then_generated_text(trained, capsys):
    code, out, err = run(["sample", str(trained), "--length", "80", "--seed", "3", "--prime", "the "], capsys)
    assert code == 0, err
    text = out[:-1]  # print's newline
    assert text.startswith("the ") and len(text) == 84
    assert set(text) <= set(TEXT)
    assert run(["sample", str(trained), "--length", "80", "--seed", "3", "--prime", "the "], capsys)[1] == out
    code, greedy, _ = run(["sample", str(trained), "--length", "20", "--temperature", "0"], capsys)
    assert code == 0 and len(greedy) == 21


def test_progress_bar_redraws_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    bar = cli.Progress(4, stream=screen)
    for step in range(1, 5):
        bar.update(step, loss=2.5, chars_per_second=12345.0)
    bar.close()
    text = screen.getvalue()
    assert text.startswith("\rstep 1/4 [") and text.endswith("\n")
    assert "\rstep 4/4 [########################] loss 2.500  12,345 chars/s" in text
    assert text.count("\n") == 1


def test_file_names_follow_the_model_path():
    assert cli.vocabulary_path("runs/m.npz") == "runs/m.vocab.json"
    assert cli.loss_curve_path("m.npz") == "m.loss.png"
    assert cli.vocabulary_path("model") == "model.vocab.json"


# --------------------------------------------------------------------------- #
# mistakes: one line, exit code 2, no traceback
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("argv, fragments", [
    ([], ["choose a command"]),
    (["fly"], ["invalid choice: 'fly'"]),
    (["train", "--steps", "0"], ["argument --steps", "expected an integer >= 1, got '0'"]),
    (["train", "--steps", "many"], ["argument --steps", "expected an integer, got 'many'"]),
    (["train", "--hidden", "-4"], ["argument --hidden"]),
    (["train", "--lr", "nan"], ["argument --lr", "expected a finite number > 0"]),
    (["train", "--clip", "-1"], ["argument --clip"]),
    (["train", "--stpes=5"], ["python -m elman train: error: unrecognized arguments: --stpes=5"]),
    (["train", "a.txt", "b.txt"], ["unrecognized arguments: b.txt"]),
    (["sample"], ["the following arguments are required: MODEL"]),
    (["sample", "m.npz", "--temperature", "-1"], ["argument --temperature", "expected a finite number >= 0"]),
    (["sample", "m.npz", "--length", "1.5"], ["argument --length"]),
])
def test_bad_arguments(argv, fragments, capsys):
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err, *fragments)
    assert out == ""


def test_bad_training_text(tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    code, _, err = run(["train", str(missing)], capsys)
    assert_one_line_error(code, err, f"cannot read '{missing}'", "No such file")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(*run(["train", str(empty)], capsys)[::2], "is empty")
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert_one_line_error(*run(["train", str(binary)], capsys)[::2], "is not UTF-8 text")
    assert_one_line_error(*run(["train", str(tmp_path)], capsys)[::2], "cannot read")
    short = tmp_path / "short.txt"
    short.write_text("abcdefgh")
    assert_one_line_error(*run(["train", str(short), "--seq-len", "8"], capsys)[::2],
                          "too few for --seq-len 8")
    out_in_nowhere = str(tmp_path / "nowhere" / "m.npz")
    assert_one_line_error(*run(["train", "--out", out_in_nowhere], capsys)[::2], "does not exist")


def test_bad_model_files(tmp_path, trained, capsys):
    assert_one_line_error(*run(["sample", str(tmp_path / "none.npz")], capsys)[::2], "does not exist")
    assert_one_line_error(*run(["sample", str(tmp_path)], capsys)[::2], "is a directory")
    text = tmp_path / "notes.npz"
    text.write_text("not a model")
    assert_one_line_error(*run(["sample", str(text)], capsys)[::2], "is not an elman model")
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, a=np.zeros(3))
    assert_one_line_error(*run(["sample", str(arrays)], capsys)[::2], "is not an elman model")
    orphan = tmp_path / "orphan.npz"
    orphan.write_bytes(trained.read_bytes())  # a model without its vocabulary file
    assert_one_line_error(*run(["sample", str(orphan)], capsys)[::2], "cannot read the vocabulary")
    bad_vocab = tmp_path / "orphan.vocab.json"
    bad_vocab.write_text("[1, 2]")
    assert_one_line_error(*run(["sample", str(orphan)], capsys)[::2], "is not a vocabulary")
    bad_vocab.write_text('{"chars": "ab"}')  # a vocabulary, but not this model's
    assert_one_line_error(*run(["sample", str(orphan)], capsys)[::2], "is not a character model")
    assert_one_line_error(*run(["sample", str(trained), "--prime", "FOX"], capsys)[::2],
                          "--prime: character 'F' is not in the vocabulary")


def test_bench_passes_its_arguments_on(monkeypatch, capsys):
    import elman.bench_cli

    received = []
    monkeypatch.setattr(elman.bench_cli, "main", lambda argv: received.append(argv) or 0)
    assert run(["bench", "--quick"], capsys)[0] == 0
    assert received == [["--quick"]]


def test_python_dash_m_elman_reports_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "elman", "sample", str(tmp_path / "absent.npz")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"python -m elman sample: error: cannot read '{tmp_path / 'absent.npz'}': it does not exist\n"
    help_text = subprocess.run([sys.executable, "-m", "elman", "train", "--help"], capture_output=True,
                               text=True, timeout=60, cwd=tmp_path)
    assert help_text.returncode == 0 and "--seq-len" in help_text.stdout
    assert not os.listdir(tmp_path)  # neither command wrote anything


# --------------------------------------------------------------------------- #
# --out: the model, its vocabulary and its loss curve are one unit; Ctrl-C
# --------------------------------------------------------------------------- #

def outputs(model):
    """{name: bytes} of the three files train writes for model, those that exist."""
    paths = [model, model.with_name(model.stem + ".vocab.json"),
             model.with_name(model.stem + ".loss.png")]
    return {p.name: p.read_bytes() for p in paths if p.exists()}


def test_ctrl_c_before_the_first_step_writes_nothing(trained, text_file, monkeypatch, capsys):
    from elman.train import Trainer

    before = outputs(trained)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "step", interrupted)
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(trained)], capsys)
    assert code == 130 and "Traceback" not in err
    assert "interrupted before the first step: nothing written" in err
    assert "saving" not in err and "wrote" not in err
    assert outputs(trained) == before


def test_ctrl_c_after_some_steps_saves_what_was_learnt(tmp_path, text_file, monkeypatch, capsys):
    from elman.train import Trainer

    real_step, calls = Trainer.step, []

    def step_then_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "step", step_then_interrupt)
    model = tmp_path / "m.npz"
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(model)], capsys)
    assert code == 130 and "interrupted after 3 steps: saving the model as it is" in err
    assert {"m.npz", "m.vocab.json"} <= set(outputs(model))


@pytest.mark.parametrize("failing", ["vocabulary", "loss curve"])
def test_a_failure_writing_one_file_replaces_none(trained, text_file, monkeypatch, capsys,
                                                  failing):
    """The model is written first: when the vocabulary or the loss curve cannot be written, the
    old model must still be there, with its own vocabulary."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    before = outputs(trained)
    if failing == "vocabulary":
        from elman.corpus import Vocabulary

        def no_space(self):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(Vocabulary, "to_json", no_space)
    else:
        def no_space(self, *args, **kwargs):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(Figure, "savefig", no_space)
    code, out, err = run(["train", str(text_file), *TINY, "--seed", "3", "--out", str(trained)],
                         capsys)
    last = err.strip().splitlines()[-1]  # after the progress lines
    assert code == 2 and "Traceback" not in err
    assert "No space left on device" in last and "was replaced" in last
    assert outputs(trained) == before
    assert not [p for p in trained.parent.iterdir() if p.name.endswith(".tmp")]


def test_out_that_is_not_a_regular_file_is_refused_before_training(tmp_path, text_file, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(fifo)], capsys)
    assert_one_line_error(code, err, "FIFO", "not a regular file")
    assert "training on" not in err and os.path.exists(fifo) and not os.path.isfile(fifo)


def test_out_through_a_symlink_writes_its_target(tmp_path, text_file, capsys):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "m.npz"
    link.symlink_to(real / "model.npz")
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(link)], capsys)
    assert code == 0, err
    assert link.is_symlink() and RNN.load(real / "model.npz").hidden_size == 16


def test_sample_streams_its_text_and_ctrl_c_ends_it_quietly(trained):
    """A long sample: text arrives before generation ends, and SIGINT stops it with the text so
    far, a newline, exit code 130 and no traceback."""
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "elman", "sample", str(trained), "--length", "10000000",
         "--prime", "the "], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    import threading

    # read() has no time-out of its own. Generous: on a 2-core machine running three builds beside
    # it (tools/matrix.sh), 60 s once passed before the first 40 characters arrived.
    watchdog = threading.Timer(180, process.kill)
    watchdog.start()
    try:
        first = process.stdout.read(40)  # only arrives if the text is streamed
        assert first.startswith(b"the ") and len(first) == 40
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err
    assert (first + rest).endswith(b"\n")


def test_sample_prints_what_it_generated_before_ctrl_c(trained, monkeypatch, capsys):
    import elman.generate

    def three_then_interrupt(*args, **kwargs):
        def tokens():
            yield from (1, 2, 3)
            raise KeyboardInterrupt
        return tokens()

    monkeypatch.setattr(elman.generate, "iter_sample", three_then_interrupt)
    code, out, err = run(["sample", str(trained), "--prime", "the"], capsys)
    vocab = cli.load_char_model(str(trained))[1]
    assert code == 130 and err == ""
    assert out == "the" + vocab.decode([1, 2, 3]) + "\n"


def test_sample_is_the_same_text_as_before(trained, capsys):
    """Streaming changes when the text appears, not what it is."""
    from elman.generate import sample

    rnn, vocab = cli.load_char_model(str(trained))
    code, out, err = run(["sample", str(trained), "--length", "50", "--seed", "4", "--prime", "the"],
                         capsys)
    assert code == 0
    assert out == "the" + vocab.decode(sample(rnn, vocab.encode("the"), 50, temperature=0.8,
                                              seed=4)) + "\n"



def test_sample_of_a_text_file_does_not_talk_about_pickles(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a model\n")
    code, out, err = run(["sample", str(notes)], capsys)
    assert_one_line_error(code, err, "is not an elman model")
    assert "pickle" not in err


def test_a_step_that_makes_the_weights_nan_writes_nothing(trained, text_file, monkeypatch, capsys):
    """The sample after a diverged step finds NaN weights: one line, and the old model stays."""
    from elman.train import Trainer

    before = outputs(trained)
    real_step, steps = Trainer.step, []

    def diverge(self, *args, **kwargs):
        loss = real_step(self, *args, **kwargs)
        steps.append(loss)
        if len(steps) == 6:  # the step before the first sample (--sample-every 6)
            self.rnn.params["W_hh_l0"][0, 0] = np.nan
        return loss

    monkeypatch.setattr(Trainer, "step", diverge)
    code, out, err = run(["train", str(text_file), *TINY, "--out", str(trained)], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert "training diverged at step 6" in last and "holds NaN or infinity" in last
    assert outputs(trained) == before
