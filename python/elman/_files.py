"""Writing files without ever destroying what was there: the one helper every elman writer uses.

    with AtomicFiles() as files:              # one unit: all of its files are replaced, or none
        rnn.save(files.open("model.npz"))
        files.open("model.vocab.json", "w").write(text)

    write_atomically("model.onnx", lambda f: f.write(data))      # a single file

Each file is written to a temporary file next to its target and renamed over it only once every
file of the unit has been written, flushed and synced, so an error or a crash part way leaves
every target as it was. What the target is decides how it is written:

* a symlink is followed: the file it points to is replaced (the link stays a link), as open()
  would write through it;
* anything that is not a regular file (a directory, a FIFO, a device such as /dev/null, a socket)
  is refused with an OSError before anything is written, and left untouched: a rename would
  replace it by a regular file;
* a replaced file keeps its permission bits (and, where allowed, its owner and group); a new file
  gets the permissions the umask gives (0666 & ~umask), as open() would give it;
* every error names the path the caller gave, never the temporary name.

A replaced file is a new inode: other hard links to the old one keep the old content, as with
any atomic save (editors, git, pip do the same).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

__all__ = ["AtomicFiles", "write_atomically", "check_replaceable"]


def write_atomically(path, write, mode="wb", encoding=None):
    """Call ``write(f)`` with a file object open on a temporary file next to path's target, then
    rename it over the target (see the module docstring). Returns what write returned."""
    with AtomicFiles() as files:
        return write(files.open(path, mode, encoding=encoding))


def check_replaceable(path):
    """An OSError naming path unless a file could be written there: its target (symlinks
    followed) is a regular file or absent, in an existing folder. Nothing is written; for a
    command to fail before its work rather than after it (the writers check again)."""
    given = os.fsdecode(os.fspath(path))
    target = os.path.realpath(given)
    _regular_target(given, target)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"the folder {directory!r} does not exist", given)


class AtomicFiles:
    """A unit of files replaced together: ``open`` each target, write it; leaving the ``with``
    block without an exception replaces them all, an exception (KeyboardInterrupt included)
    leaves them all as they were and removes the temporary files."""

    def __init__(self):
        self._staged = []  # [_Staged], in the order opened

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.commit()
        else:
            self.discard()
        return False

    def open(self, path, mode="wb", encoding=None):
        """A new file object on a temporary file that will replace path's target ("wb" or "w").
        Raises the OSError of a target that cannot be replaced before anything is written."""
        if mode not in ("wb", "w"):
            raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
        given = os.fsdecode(os.fspath(path))
        target = os.path.realpath(given)  # symlinks followed, even a chain of them
        if any(staged.target == target for staged in self._staged):
            raise ValueError(f"{given!r} is written twice in one unit (its target {target!r})")
        existing = _regular_target(given, target)
        directory, name = os.path.split(target)
        # A new file is created as open() creates one, 0666 less the umask (the kernel applies
        # it: no umask query, which would briefly change it for every thread); a replacement
        # starts private and gets the replaced file's bits before it is renamed.
        fd, temporary = _create_temporary(given, directory, name,
                                          0o666 if existing is None else 0o600)
        staged = _Staged(given, target, temporary, existing)
        self._staged.append(staged)
        try:
            staged.file = os.fdopen(fd, mode, encoding=encoding)
        except BaseException:
            os.close(fd)
            raise
        return staged.file

    def commit(self):
        """Sync every temporary file, then rename each over its target."""
        try:
            for staged in self._staged:
                staged.finish()
        except BaseException:
            self.discard()
            raise
        renamed = set()
        try:
            for staged in self._staged:
                staged.replace()
                renamed.add(staged.target)
        finally:
            self._staged = [s for s in self._staged if s.target not in renamed]
            self.discard()
        for directory in {os.path.dirname(s) for s in renamed}:
            _sync_directory(directory)

    def discard(self):
        """Remove every temporary file; the targets are not touched."""
        for staged in self._staged:
            staged.remove()
        self._staged = []


class _Staged:
    """One target and the temporary file that will replace it."""

    def __init__(self, given, target, temporary, existing):
        self.given = given  # the path the caller gave, for messages
        self.target = target  # that path with symlinks resolved
        self.temporary = temporary
        self.existing = existing  # os.stat_result of the file replaced, or None for a new one
        self.file = None

    def finish(self):
        """Flush and sync the data, give the file its final owner and permissions, close it."""
        try:
            if self.file.closed:  # the writer closed it itself: reopen it to sync it
                self.file = os.fdopen(os.open(self.temporary, os.O_RDONLY), "rb")
            self.file.flush()
            fd = self.file.fileno()
            if self.existing is not None:
                _keep_owner(fd, self.existing)
                os.fchmod(fd, stat.S_IMODE(self.existing.st_mode))
            os.fsync(fd)  # the data is on disk before the name points at it
            self.file.close()
        except OSError as error:  # a full disk, a quota: name the user's path
            raise _naming(error, self.given) from None

    def replace(self):
        existing = _regular_target(self.given, self.target)  # checked again: it may have changed
        if existing is not None and self.existing is None:
            # Created meanwhile: keep what its creator chose rather than our guess.
            os.chmod(self.temporary, stat.S_IMODE(existing.st_mode))
        try:
            os.replace(self.temporary, self.target)
        except OSError as error:
            raise _naming(error, self.given) from None

    def remove(self):
        if self.file is not None and not self.file.closed:
            try:
                self.file.close()
            except OSError:
                pass
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass


def _regular_target(given, target):
    """os.stat of the target when it is a regular file, None when there is none yet; an OSError
    naming the user's path when it is anything else (elman replaces only regular files)."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as error:  # a symlink loop, a path through a file, no permission
        raise _naming(error, given) from None
    if stat.S_ISREG(info.st_mode):
        return info
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "it is a directory", given)
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode)
            else "a character device" if stat.S_ISCHR(info.st_mode)
            else "a block device" if stat.S_ISBLK(info.st_mode)
            else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
    what = kind if kind.startswith("not") else f"{kind}, not a regular file"
    shown = given if os.path.abspath(given) == target else f"{given} (-> {target})"
    raise OSError(f"cannot write {shown!r}: it is {what}; elman only replaces regular files "
                  f"and left it untouched")


def _create_temporary(given, directory, name, mode):
    """(fd, path) of a new file ``.NAME.XXXXXXXX.tmp`` in directory, created with mode (less the
    umask); an OSError naming the user's path (e.g. no write permission on the folder)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        # name shortened so that a target name near the length limit still has a temporary
        temporary = os.path.join(directory, f".{name[:120]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temporary, flags, mode), temporary
        except FileExistsError:
            continue
        except OSError as error:
            raise _naming(error, given) from None
    raise FileExistsError(errno.EEXIST, "no free temporary name next to it", given)


def _naming(error, given):
    """The same kind of OSError, about the path the user gave instead of a temporary name."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, given)


def _keep_owner(fd, existing):
    """Give the new file the replaced file's owner and group where we may (root, or the owner
    changing to one of its groups); elsewhere it gets ours, as with any new file."""
    if (existing.st_uid, existing.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, existing.st_uid, existing.st_gid)
    except OSError:
        try:
            os.fchown(fd, -1, existing.st_gid)
        except OSError:
            pass


def _sync_directory(directory):
    """Make a rename durable (best effort: not every system can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
