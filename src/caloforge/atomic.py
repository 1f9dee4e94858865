"""Atomic outputs: a file or a directory appears complete at its final path, or not at all.

Every output of caloforge is written through here. The content goes to a temporary sibling
(same directory, so the same file system), which is renamed over the final path only when it
is complete; on any failure the temporary is removed. File-system errors (a full disk, no
permission, a read-only file system) become one :class:`~caloforge.errors.OutputError`
naming the output.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from caloforge.errors import OutputError


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, hex (recorded beside weights and checkpoints, checked on load)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def os_reason(exc: OSError) -> str:
    """One line for a file-system error: ``"No space left on device"``, not a library's dump."""
    if exc.errno:
        return os.strerror(exc.errno)
    return (exc.strerror or str(exc)).splitlines()[0]


def check_output(path: str | Path, *, overwrite: bool = False, directory: bool = False) -> None:
    """Fail early, before any expensive work, if ``path`` cannot be written.

    Args:
        path: the output file (or directory, with ``directory``; a directory's missing
            parents are created, so the first existing one must be writable).
        overwrite: an existing output may be replaced.
        directory: the output is a directory.

    Raises:
        OutputError: if the parent directory is missing, not a directory or not writable,
            ``path`` is of the other kind (a directory for a file, or the reverse), or
            ``path`` exists (without ``overwrite``).
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path()
    if directory:  # an output directory is created with its parents: check the first that exists
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {path}: {parent} is not a directory")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    if path.exists() and path.is_dir() != directory:
        kind = "a file, not a directory" if directory else "a directory"
        raise OutputError(f"cannot write {path}: it is {kind}")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists", override="overwrite", action="replace it")


def _new_file_mode() -> int:
    """The permissions of a newly created file under the process's umask (0644 usually)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_file(path: str | Path, *, tmp_dir: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The temporary keeps ``path``'s suffix, so writers that infer the format from it (numpy's
    ``savez``, matplotlib's ``savefig``) write the right one.

    Args:
        path: the final file.
        tmp_dir: where the temporary goes instead (same file system as ``path``), e.g. a run's
            work directory that is removed with everything in it.

    Raises:
        OutputError: if the temporary cannot be created or written, or the rename fails.
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=path.suffix, dir=tmp_dir or path.parent
        )
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp's 0600 would make every output private to its writer
            tmp.chmod(_new_file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


@contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; it becomes ``path`` on success.

    Args:
        path: the final directory.
        overwrite: replace an existing ``path`` (else it is an error, checked before the
            block runs).

    Raises:
        OutputError: if ``path`` exists (without ``overwrite``) or is a file, or a file-system
            operation fails.
    """
    path = Path(path)
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
    check_output(path, overwrite=overwrite, directory=True)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
    try:
        yield work
        work.chmod(_new_file_mode() | ((_new_file_mode() & 0o444) >> 2))  # mkdtemp's 0700: + x
        if path.exists():
            shutil.rmtree(path)
        work.rename(path)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


@contextmanager
def output_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on an output while it is made: a second run on the same output
    (another process, another machine on the same file system) is refused, never interleaved.

    A run directory (an existing directory) is locked through ``.lock`` inside it, which
    stays; any other output through ``.NAME.lock`` beside it, removed on release. The lock
    is the operating system's (``flock``): a killed run leaves none held.

    Raises:
        OutputError: if another run holds the lock, or the lock file cannot be made.
    """
    path = Path(path)
    inside = path.is_dir()
    lock = path / ".lock" if inside else path.with_name(f".{path.name}.lock")
    while True:
        try:
            handle = lock.open("a")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {os_reason(exc)}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise OutputError(f"another caloforge run is writing {path} right now") from None
        try:  # the lock file may have been removed by its last holder meanwhile: lock anew
            if os.fstat(handle.fileno()).st_ino == lock.stat().st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        if not inside:
            lock.unlink(missing_ok=True)
        handle.close()
