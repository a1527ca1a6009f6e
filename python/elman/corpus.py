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

    chars: the characters, sorted by code point, so the same text always gives the same indices.
    """

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(chars)) != len(chars):
            raise ValueError("vocabulary characters must be distinct")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}
        codes = np.array([ord(c) for c in chars], dtype=np.uint32)
        self._order = np.argsort(codes).astype(np.int64)  # index of each code, in code order
        self._sorted_codes = codes[self._order]

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
        # Vectorised: the text's code points (UTF-32) looked up among the vocabulary's, which
        # are kept sorted for this search.
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        where = np.searchsorted(self._sorted_codes, codes)
        found = np.minimum(where, len(self.chars) - 1)
        unknown = self._sorted_codes[found] != codes
        if unknown.any():
            char = text[int(np.argmax(unknown))]
            raise ValueError(f"character {char!r} is not in the vocabulary")
        return self._order[found]

    def decode(self, indices):
        """The text of a sequence of indices."""
        return "".join(self.chars[i] for i in np.asarray(indices, dtype=np.int64).reshape(-1))

    def to_json(self):
        return json.dumps({"chars": "".join(self.chars)}, ensure_ascii=True)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("chars"), str):
            raise ValueError("not a vocabulary: expected a JSON object with a string 'chars'")
        return cls(data["chars"])
