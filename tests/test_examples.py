"""The examples of seed 004's application shapes run, learn, and beat chance on held-out data.

Each runs as a user would run it (a subprocess), with fewer training steps than its default.
"""

import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"

# (script, training steps for the test): enough to be far above chance, a few seconds each.
CASES = [
    ("one_to_many.py", 60),
    ("many_to_one.py", 150),
    ("many_to_many.py", 100),
    ("encoder_decoder.py", 200),
]


@pytest.mark.parametrize("script, steps", CASES, ids=[c[0] for c in CASES])
def test_example_learns_its_task(script, steps):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--steps", str(steps)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"held-out accuracy: ([0-9.]+) \(chance ([0-9.]+)\)", last)
    assert match, last
    accuracy, chance = float(match[1]), float(match[2])
    assert accuracy > chance + 0.4, last

