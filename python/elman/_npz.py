"""Reading an .npz archive one member at a time, each member's ``.npy`` header checked before its
data is read: a small file cannot make the reader decompress gigabytes it will then refuse.

    with NpzReader(f, where="model.npz") as npz:
        npz.names                                   # member names, ".npy" dropped, from the index
        npz.read("W_hh_l0", shape=(4, 4), dtype=np.float32)   # ValueError before reading if
                                                              # the header declares otherwise

Nothing is unpickled (object arrays are refused by their header's dtype). Every failure to parse
the data (not a zip archive, a bad header, truncated or corrupted data: zipfile, zlib and NumPy
raise many kinds) becomes one ValueError that starts with ``where``.
"""

from __future__ import annotations

import zipfile

import numpy as np

__all__ = ["NpzReader", "NPY_MAGIC"]

NPY_MAGIC = b"\x93NUMPY"  # how a single-array .npy file starts


class NpzReader:
    """The ``.npy`` members of an .npz archive in an open binary file object (seekable)."""

    def __init__(self, f, where):
        self.where = where
        start = f.read(len(NPY_MAGIC))
        f.seek(0)
        if start == NPY_MAGIC:
            raise ValueError(f"{where} holds a single array (.npy), not an .npz archive")
        try:
            self._zip = zipfile.ZipFile(f)
        except Exception as error:  # BadZipFile, a bad seek, a mangled index
            raise ValueError(f"{where} is not a readable .npz file written by elman.RNN.save "
                             f"(an .npz is a zip archive of arrays; {type(error).__name__}: "
                             f"{error})") from error
        self._members = {}
        for info in self._zip.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self._members[name] = info

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()
        return False

    @property
    def names(self):
        """The member names, as np.load lists them (".npy" dropped), without reading any data."""
        return list(self._members)

    def header(self, name):
        """(shape, dtype) that member name declares, read from its header alone."""
        with self._open(name) as member:
            return self._parse(name, lambda: _read_header(member))[::2]

    def read(self, name, shape, dtype, describe=None):
        """The array of member name, after checking that its header declares exactly shape and
        dtype (a ValueError saying what it declares otherwise, before any of its data is read).
        describe: how the error names the member (default: its name)."""
        declared_shape, declared_dtype = self.header(name)
        if declared_shape != tuple(shape) or declared_dtype != np.dtype(dtype):
            what = describe or f"the array {name!r}"
            raise ValueError(f"{self.where}: {what} is a {declared_dtype} array of shape "
                             f"{declared_shape}, expected {np.dtype(dtype)} of shape "
                             f"{tuple(shape)}")
        with self._open(name) as member:
            def whole():
                array = np.lib.format.read_array(member, allow_pickle=False)
                if member.read(1):  # also makes zipfile check the member's CRC
                    raise ValueError("data after the array's end")
                return array
            return self._parse(name, whole)

    def _open(self, name):
        return self._parse(name, lambda: self._zip.open(self._members[name]))

    def _parse(self, name, action):
        try:
            return action()
        except Exception as error:  # see the module docstring: bad data, whatever tripped
            raise ValueError(f"{self.where} is not a readable .npz file written by "
                             f"elman.RNN.save: member {name!r}: {type(error).__name__}: {error}"
                             ) from error


def _read_header(member):
    """(shape, fortran_order, dtype) of a .npy stream, reading nothing past its header."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)  # NumPy >= 1.24: at most 10 kB
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError(f".npy format version {version[0]}.{version[1]} (elman reads 1.0 and 2.0)")
