"""Text for character-level language models: a default corpus every machine has, and a vocabulary.

The default corpus is gathered at run time from the docstrings of a fixed list of Python
standard-library modules: nothing is downloaded and no text is copied into this package. It is
a few hundred kilobytes of English prose about programming, with code fragments, the kind of text
min-char-rnn was made for. The same Python version gives the same text, byte for byte: modules,
and the members of each, are visited in a fixed (sorted) order.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import warnings

import numpy as np

__all__ = ["STDLIB_MODULES", "default_corpus", "Vocabulary"]

# Pure-Python or always-built modules with substantial documentation and no side effects on
# import (no GUI, no "this"/"antigravity"). A module missing from a trimmed-down Python is skipped.
STDLIB_MODULES = (
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message",
    "enum", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "hashlib", "heapq", "hmac", "html.parser", "http.client", "http.cookiejar", "imaplib",
    "inspect", "io", "ipaddress", "itertools", "json", "logging", "mailbox", "math", "operator",
    "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets",
    "selectors", "shlex", "shutil", "smtplib", "socket", "statistics", "string", "struct",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize",
    "traceback", "typing", "unittest.case", "urllib.parse", "urllib.request", "uuid", "warnings",
    "weakref", "xml.dom.minidom", "zipfile",
)


@functools.lru_cache(maxsize=1)
def default_corpus() -> str:
    """The docstrings of :data:`STDLIB_MODULES` (modules, their public classes, functions and
    methods), each once, separated by blank lines. Built once per process (about a second)."""
    seen = set()
    parts = []
    # Importing a module or reading a deprecated attribute (typing.io, ...) may warn; the text
    # is the same either way, and a user asking for a corpus should not see those warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name in STDLIB_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for doc in _module_docstrings(module):
                if doc not in seen:  # re-exported or inherited documentation appears once
                    seen.add(doc)
                    parts.append(doc)
    return "\n\n".join(parts) + "\n"


def _module_docstrings(module):
    """The module's docstring, then those of its public members defined in it, by name."""
    yield from _doc(module)
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(member):
            yield from _doc(member)
            for attr_name, attr in sorted(vars(member).items()):
                if not attr_name.startswith("_") and callable(attr):
                    yield from _doc(attr)
        elif inspect.isroutine(member):
            yield from _doc(member)


def _doc(obj):
    # The object's own docstring, indentation cleaned as inspect.getdoc does, but never one
    # inherited from a base class (inspect.getdoc's fallback), which would repeat text.
    if isinstance(getattr(obj, "__doc__", None), str):
        doc = inspect.cleandoc(obj.__doc__)
        if len(doc) >= 40:  # one-liners like "Return self." teach little
            yield doc


class Vocabulary:
    """The characters of a text, each with an index: ``encode`` text to indices, ``decode`` back.

    chars: distinct single characters sorted by code point (``Vocabulary.from_text(text)`` or
    ``Vocabulary(sorted(chars))``), so the same text always gives the same indices; characters
    out of order raise ValueError rather than being reordered, which would silently give them
    other indices than their positions.
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        codes = np.array([ord(c) for c in chars], dtype=np.uint32)
        unsorted = np.flatnonzero(codes[1:] < codes[:-1])
        if unsorted.size:
            i = int(unsorted[0])
            raise ValueError(f"vocabulary characters must be sorted by code point, got "
                             f"{chars[i]!r} before {chars[i + 1]!r} (at {i} and {i + 1}): pass "
                             f"sorted(chars), or use Vocabulary.from_text")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}
        self._codes = codes  # sorted, so encode is a binary search

    @classmethod
    def from_text(cls, text):
        """The vocabulary of the characters appearing in text."""
        return cls(sorted(set(text)))

    def __len__(self):
        return len(self.chars)

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def __repr__(self):
        return f"Vocabulary({len(self)} characters)"

    def encode(self, text):
        """Indices int64[len(text)]; a character outside the vocabulary raises ValueError."""
        # Vectorised: the text's code points (UTF-32) looked up among the vocabulary's (sorted).
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        where = np.searchsorted(self._codes, codes)
        found = np.minimum(where, len(self.chars) - 1)
        unknown = self._codes[found] != codes
        if unknown.any():
            char = text[int(np.argmax(unknown))]
            raise ValueError(f"character {char!r} is not in the vocabulary")
        return found.astype(np.int64)

    def decode(self, indices):
        """The text of a sequence of indices (integers in 0..len(self)-1, any shape, read in
        order); a negative or too large index raises ValueError, as does a non-integer one."""
        ids = np.asarray(indices)
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got dtype {ids.dtype}")
        ids = ids.reshape(-1)
        bad = np.flatnonzero((ids < 0) | (ids >= len(self.chars)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"index {ids[i]} (at position {i}) is outside the vocabulary's "
                             f"0..{len(self.chars) - 1}")
        return "".join(self.chars[i] for i in ids)

    def to_json(self):
        return json.dumps({"chars": "".join(self.chars)}, ensure_ascii=True)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("chars"), str):
            raise ValueError("not a vocabulary: expected a JSON object with a string 'chars'")
        return cls(data["chars"])
