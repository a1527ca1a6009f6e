"""elman._files, the one atomic writer under RNN.save, to_onnx, the command line's --out and the
benchmark reports: symlinks followed, non-regular files refused and left alone, permissions kept,
errors naming the user's path, nothing replaced when anything fails."""

import errno
import io
import os
import pathlib
import re
import signal
import stat
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

from elman import _files
from elman._files import AtomicFiles, write_atomically
from elman.model import RNN

PACKAGE = pathlib.Path(_files.__file__).parent


def small_model(seed=0):
    return RNN(3, 4, output_size=3, seed=seed)


@contextmanager
def deadline(seconds=20):
    """Fail instead of hanging (opening a FIFO for writing blocks until a reader comes)."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def leftovers(directory):
    return sorted(p.name for p in pathlib.Path(directory).iterdir() if p.name.endswith(".tmp"))


def writers():
    """Every elman writer of a path, as (name, write(path))."""
    rnn = small_model()
    result = [("RNN.save", rnn.save)]
    try:
        import onnx  # noqa: F401
        result.append(("to_onnx", rnn.to_onnx))
    except ImportError:
        pass
    return result


WRITERS = writers()


# --------------------------------------------------------------------------- #
# symlinks
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("name, write", WRITERS)
def test_a_symlink_is_followed_and_stays_a_link(tmp_path, name, write):
    target = tmp_path / "real" / "model.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    write(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() != b"old" and target.stat().st_size > 100
    assert leftovers(tmp_path) == [] and leftovers(target.parent) == []  # written next to target


def test_a_chain_of_symlinks_and_a_dangling_one(tmp_path):
    target = tmp_path / "model.npz"
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(target)  # dangling: the file is created, as open() would
    small_model().save(tmp_path / "a")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert RNN.load(target).config() == small_model().config()


def test_a_symlink_loop_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(OSError) as caught:
        small_model().save(tmp_path / "a")
    assert str(tmp_path / "a") in str(caught.value)
    assert (tmp_path / "a").is_symlink() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- #
# what is not a regular file is refused and left alone
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("name, write", WRITERS)
def test_a_fifo_is_refused_and_left_a_fifo(tmp_path, name, write):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "to-pipe"
    link.symlink_to(fifo)
    for path in (fifo, link):
        with deadline(), pytest.raises(OSError, match="FIFO.*not a regular file.*left it untouched"):
            write(path)
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert leftovers(tmp_path) == []


def test_a_device_node_is_refused_and_left_a_device(tmp_path):
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the /dev/null device
    except (PermissionError, AttributeError):
        pytest.skip("making a device node needs root")
    for write in (small_model().save, lambda p: write_atomically(p, lambda f: f.write(b"x"))):
        with pytest.raises(OSError, match="a character device, not a regular file"):
            write(device)
        assert stat.S_ISCHR(os.lstat(device).st_mode)
    assert leftovers(tmp_path) == []


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError) as caught:
        small_model().save(tmp_path)
    assert caught.value.filename == str(tmp_path) and tmp_path.is_dir()


# --------------------------------------------------------------------------- #
# permissions
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("name, write", WRITERS)
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_a_replaced_file_keeps_its_permissions(tmp_path, name, write, mode):
    path = tmp_path / "model"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    write(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() != b"old"


@pytest.mark.parametrize("name, write", WRITERS)
@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_umasks_permissions(tmp_path, name, write, mask):
    path = tmp_path / "model"
    with umask(mask):
        write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


# --------------------------------------------------------------------------- #
# errors name the user's path; nothing is replaced when anything fails
# --------------------------------------------------------------------------- #

def test_no_write_permission_on_the_folder_names_the_given_path(tmp_path, monkeypatch):
    real_open = os.open

    def refuse_new_files(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args)

    monkeypatch.setattr(_files.os, "open", refuse_new_files)
    with pytest.raises(PermissionError) as caught:
        small_model().save(tmp_path / "model.npz")
    assert caught.value.filename == str(tmp_path / "model.npz")
    assert ".tmp" not in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="runs a child as user 'nobody', which needs root")
def test_no_write_permission_for_a_real_user(tmp_path):
    """The same as another user, for real: root ignores folder permissions."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="elman-readonly-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)  # others may enter and read, not write
        script = ("import elman, sys\n"
                  "try:\n"
                  f"    elman.RNN(2, 3).save({folder + '/m.npz'!r})\n"
                  "except PermissionError as e:\n"
                  "    print(repr(e.filename), e.strerror)\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        try:
            result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                    text=True, timeout=120, user="nobody", env=env, cwd="/")
        except (KeyError, PermissionError, OSError) as error:
            pytest.skip(f"cannot run a child as nobody: {error}")
        if "No module named" in result.stderr or "Permission denied" in result.stderr:
            pytest.skip("user nobody cannot read this checkout")
        assert result.stdout.strip() == f"{folder + '/m.npz'!r} Permission denied", result.stderr
        assert os.listdir(folder) == []
    finally:
        os.rmdir(folder)


def test_a_full_disk_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    small_model(seed=1).save(path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as caught:
        small_model(seed=2).save(path)
    assert caught.value.filename == str(path)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_a_failing_writer_leaves_the_target_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("good data")

    def half(f):
        f.write(b"half of it")
        raise RuntimeError("the writer failed")

    for error in (RuntimeError, KeyboardInterrupt):
        def writer(f, error=error):
            f.write(b"half")
            raise error("stop")
        with pytest.raises(error):
            write_atomically(path, writer)
        assert path.read_text() == "good data" and leftovers(tmp_path) == []


def test_a_unit_replaces_all_of_its_files_or_none(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("old 1")
    second.write_text("old 2")
    with pytest.raises(ValueError):
        with AtomicFiles() as files:
            files.open(first, "w").write("new 1")
            files.open(second, "w").write("new 2")
            raise ValueError("writing the third file failed")
    assert (first.read_text(), second.read_text()) == ("old 1", "old 2")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="FIFO"):
        with AtomicFiles() as files:
            files.open(first, "w").write("new 1")
            files.open(fifo, "w")
    assert first.read_text() == "old 1" and leftovers(tmp_path) == []
    with AtomicFiles() as files:
        files.open(first, "w").write("new 1")
        files.open(second, "w").write("new 2")
    assert (first.read_text(), second.read_text()) == ("new 1", "new 2")


def test_a_writer_may_close_its_file(tmp_path):
    path = tmp_path / "closed.txt"
    write_atomically(path, lambda f: (f.write(b"done"), f.close()))
    assert path.read_bytes() == b"done"


def test_file_objects_are_still_written_directly():
    buffer = io.BytesIO()
    small_model().save(buffer)
    buffer.seek(0)
    assert RNN.load(buffer).config() == small_model().config()


# --------------------------------------------------------------------------- #
# one helper for every writer
# --------------------------------------------------------------------------- #

# Writing a path: a rename, a temporary file, open() for writing, savefig/savez/tofile of a name
# (a file object, f, path or files.open(...), is what the helper hands out).
WRITING = re.compile(r"os\.(replace|rename)\(|mkstemp|NamedTemporaryFile|\.tofile\("
                     r"|\.savefig\((?!f\b|files\.open\()|np\.savez\w*\((?!f\b|path\b)"
                     r"|(?<![\w.])open\(.*['\"][wax]b?\+?['\"]")
ALLOWED = {("benchmarks/probes.py", "/proc/self/clear_refs"),  # a kernel control file, not data
           ("benchmarks/workers.py", "os.dup(sys.stdout.fileno())")}  # a pipe to the parent


def test_every_writer_goes_through_the_atomic_helper():
    """No module but elman._files renames, makes temporary files or opens a file for writing."""
    found = []
    for source in sorted(PACKAGE.rglob("*.py")):
        relative = source.relative_to(PACKAGE).as_posix()
        if relative == "_files.py":
            continue
        for number, line in enumerate(source.read_text().splitlines(), 1):
            if WRITING.search(line) and not any(relative == f and mark in line
                                                for f, mark in ALLOWED):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []


def test_bench_reports_are_written_atomically(tmp_path):
    from elman.benchmarks import report

    path = tmp_path / "results.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    report.write_json({"a": [1, 2]}, link)
    assert link.is_symlink() and path.read_text() == '{\n "a": [\n  1,\n  2\n ]\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
