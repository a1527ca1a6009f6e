"""docs/api.md is generated from the docstrings (tools/gen_api_docs.py): it must be what the
generator writes now, so that a docstring change without a rerun fails here, not in a reader's
hands."""

import os
import subprocess
import importlib.util
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


GENERATOR = os.path.join(ROOT, "tools", "gen_api_docs.py")


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "docs", "api.md")) or not os.path.exists(GENERATOR),
                    reason="a copy of the tests without the source tree (tools/build_wheel.sh)")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="the generator documents elman.torch, which needs torch")
def test_api_reference_is_up_to_date():
    run = subprocess.run([sys.executable, GENERATOR, "--check"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, (
        "docs/api.md differs from the docstrings: run `python tools/gen_api_docs.py`\n"
        + run.stdout + run.stderr)
