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
