"""HDF5 shower files in the CaloChallenge layout, with caloforge metadata.

What a file holds and means is the contract of :mod:`caloforge.data.contract`; this module
writes and reads it: datasets gzip-compressed and chunked by showers, attributes with nested
values stored as JSON strings, readers that stream in chunks.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

from caloforge.atomic import atomic_file, os_reason
from caloforge.data.contract import FORMAT_NAME, FORMAT_VERSION, KEYS
from caloforge.errors import DataError, OutputError

ROWS_PER_CHUNK = 100  # HDF5 chunk height (showers)
_UNCLOSED: list[Path] = []
_KEPT: list[h5py.File] = []  # files HDF5 failed on: freeing them could crash it (see below)


def unclosed_hdf5() -> list[Path]:
    """Output files that HDF5 failed to close (a full disk, a vanished file system).

    After a failed write, closing or even freeing the file can crash HDF5 (a segmentation
    fault), so such a file is kept open and referenced here; HDF5 would retry closing it when
    the process exits, and may crash then. A front end that finds any here should report its
    error and end the process without that retry (``os._exit``): the temporary file is
    unlinked already, and nothing else is pending.
    """
    return list(_UNCLOSED)


@contextmanager
def _quiet_hdf5() -> Iterator[list[OSError]]:
    """Free, without their noise, the HDF5 objects a failed write or close leaves behind.

    On a full disk, every HDF5 object freed afterwards fails to flush and prints a traceback
    ("Exception ignored in h5py...ObjectID.__dealloc__") that says nothing the error raised
    does not. The block appends the error it caught to the list yielded; the objects are then
    freed here, within the block, with stderr set aside (a garbage collection only then: this
    wraps every write).
    """
    failures: list[OSError] = []
    with contextlib.redirect_stderr(io.StringIO()):
        yield failures
        if failures:
            gc.collect()


def _keep(writer: ShowerWriter) -> None:
    """Leave a file HDF5 failed on open and alive (see :func:`unclosed_hdf5`)."""
    _UNCLOSED.append(writer.path)
    _KEPT.append(writer.file)


def _close(writer: ShowerWriter) -> None:
    """Close the writer's file; if HDF5 cannot, keep it (see :func:`unclosed_hdf5`) and raise
    the error (an OSError)."""
    with _quiet_hdf5() as failures:
        try:
            writer.file.close()
        except OSError as exc:
            failures.append(OSError(exc.errno, os_reason(exc)))
    if failures:
        _keep(writer)
        raise failures[0]


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as HDF5 can store them: dicts and lists become JSON strings; None is dropped."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, dict | list | tuple):
            out[key] = json.dumps(value, sort_keys=True)
        elif value is not None:
            out[key] = value
    return out


def decode_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_attrs` (JSON strings that hold objects are parsed)."""
    out: dict[str, Any] = {}
    for key, raw in attrs.items():
        value = raw.decode() if isinstance(raw, bytes) else raw
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


class ShowerWriter:
    """Write a shower file of known size chunk by chunk; the file appears only when complete.

    Data go to a temporary file (beside ``path``, or in ``tmp_dir``, which must be on the same
    file system) that :meth:`close` renames to ``path`` once every row was written
    (:func:`~caloforge.atomic.atomic_file`), so an interrupted writer never leaves a
    half-written output. Errors of the file system become
    :class:`~caloforge.errors.OutputError`.
    """

    def __init__(
        self,
        path: str | Path,
        n: int,
        n_voxels: int,
        attrs: Mapping[str, Any],
        *,
        tmp_dir: str | Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.n = n
        self.written = 0
        self.finished = False
        self.broken = False  # a write failed: HDF5 must not touch the file again
        if n < 1:
            raise OutputError(f"{self.path}: nothing to write (no showers)")
        self._output = contextlib.ExitStack()
        self.tmp = self._output.enter_context(atomic_file(self.path, tmp_dir=tmp_dir))
        # Keep a few HDF5 chunks in the cache so that rows written in smaller pieces are
        # compressed once, when their chunk is complete.
        chunk_bytes = min(ROWS_PER_CHUNK, n) * max(n_voxels, 1) * 4
        try:
            self.file = h5py.File(self.tmp, "w", rdcc_nbytes=max(4 * chunk_bytes, 1 << 20))
        except OSError as exc:
            self._output.__exit__(type(exc), exc, None)
            raise OutputError(f"cannot write {self.path}: {os_reason(exc)}") from None
        try:
            rows = min(ROWS_PER_CHUNK, n)
            kw: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
            self.file.create_dataset("incident_energies", (n, 1), "f8", chunks=(rows, 1), **kw)
            self.file.create_dataset("showers", (n, n_voxels), "f4", chunks=(rows, n_voxels), **kw)
            self.file.create_dataset("incident_theta", (n, 1), "f8", chunks=(rows, 1), **kw)
            self.file.create_dataset("incident_phi", (n, 1), "f8", chunks=(rows, 1), **kw)
            self.file.attrs.update(
                encode_attrs({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **attrs})
            )
        except BaseException:
            self.abort()
            raise

    def write(
        self, energies: np.ndarray, showers: np.ndarray, theta: np.ndarray, phi: np.ndarray
    ) -> None:
        """Append rows: energies, theta, phi of shape (k,), showers (k, V)."""
        k = len(energies)
        if self.written + k > self.n or np.shape(showers) != (k, self.file["showers"].shape[1]):
            raise OutputError(f"{self.path}: rows of shape {np.shape(showers)} do not fit")
        sl = slice(self.written, self.written + k)
        with _quiet_hdf5() as failures:
            try:
                self.file["incident_energies"][sl] = np.asarray(energies).reshape(k, 1)
                self.file["showers"][sl] = showers
                self.file["incident_theta"][sl] = np.asarray(theta).reshape(k, 1)
                self.file["incident_phi"][sl] = np.asarray(phi).reshape(k, 1)
            except OSError as exc:
                failures.append(OSError(exc.errno, os_reason(exc)))
        if failures:
            self.broken = True
            raise OutputError(f"cannot write {self.path}: {failures[0].strerror}")
        self.written += k

    def close(self) -> None:
        """Finish the file and move it into place (once; later calls do nothing)."""
        if self.finished:
            return
        self.finished = True
        try:
            _close(self)
            if self.written != self.n:
                raise OutputError(f"{self.path}: {self.written} of {self.n} showers written")
        except BaseException as exc:
            self._output.__exit__(type(exc), exc, None)  # drops the temporary file
            if isinstance(exc, OSError):
                raise OutputError(f"cannot write {self.path}: {os_reason(exc)}") from None
            raise
        self._output.close()  # the rename into place

    def abort(self) -> None:
        """Drop the temporary file."""
        self.finished = True
        aborted = OutputError(f"{self.path}: writing aborted")
        try:
            if self.broken:  # closing after a failed write can crash HDF5
                _keep(self)
            else:
                _close(self)
        except OSError:
            pass  # the error being handled says why; the temporary goes anyway
        finally:
            self._output.__exit__(OutputError, aborted, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        elif not self.finished:
            self.abort()


@contextmanager
def open_h5(path: str | Path) -> Iterator[h5py.File]:
    """Open an HDF5 file for reading, turning every failure into a :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise DataError(f"{path}: not a readable HDF5 file (corrupt or another format)") from None
    try:
        _check_self_contained(f, path)
        yield f
    finally:
        f.close()


def _check_self_contained(group: h5py.Group, path: Path) -> None:
    """Refuse a file whose content lives elsewhere: external links, external storage, virtual
    datasets (a crafted file could make us read, and copy, any file of the system).

    Raises:
        DataError: naming the first such object.
    """
    for name in group:
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        if isinstance(link, h5py.ExternalLink):
            raise DataError(f"{path}: {where} links to another file; shower files must be self-contained")  # fmt: skip
        if isinstance(link, h5py.SoftLink):
            continue  # points inside this file, at an object checked where it lives
        try:
            item = group[name]
        except (KeyError, OSError):
            raise DataError(f"{path}: {where} cannot be read (corrupt file?)") from None
        if isinstance(item, h5py.Group):
            _check_self_contained(item, path)
        elif isinstance(item, h5py.Dataset) and (item.external or item.is_virtual):
            kind = "external storage" if item.external else "a virtual dataset"
            raise DataError(f"{path}: {where} is {kind}; shower files must be self-contained")


def check_layout(f: h5py.File, path: str | Path, *, require_angles: bool = False) -> int:
    """Check keys and shapes of an opened shower file; return the number of showers N.

    Raises:
        DataError: naming the first missing key or wrong shape.
    """
    keys = ("incident_energies", "showers") + (
        ("incident_theta", "incident_phi") if require_angles else ()
    )
    for key in keys:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            found = ", ".join(sorted(f.keys())) or "nothing"
            raise DataError(f"{path}: no dataset {key!r} (found: {found}); not a shower file")
    n = f["incident_energies"].shape[0] if f["incident_energies"].ndim else -1
    if f["incident_energies"].ndim not in (1, 2) or (
        f["incident_energies"].ndim == 2 and f["incident_energies"].shape[1] != 1
    ):
        raise DataError(
            f"{path}: incident_energies has shape {f['incident_energies'].shape}, expected (N, 1)"
        )
    if f["showers"].ndim != 2 or f["showers"].shape[0] != n:
        raise DataError(f"{path}: showers has shape {f['showers'].shape}, expected ({n}, V)")
    for key in ("incident_theta", "incident_phi"):
        if key in f and (not isinstance(f[key], h5py.Dataset) or f[key].shape not in ((n,), (n, 1))):  # fmt: skip
            shape = getattr(f[key], "shape", "a group")
            raise DataError(f"{path}: {key} has shape {shape}, expected ({n}, 1)")
    for key in (key for key in KEYS if key in f):
        if not np.issubdtype(f[key].dtype, np.floating):
            raise DataError(f"{path}: {key} holds {f[key].dtype}, expected floating point numbers")
    return int(n)


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The decoded file attributes."""
    with open_h5(path) as f:
        return decode_attrs(f.attrs)


def iter_chunks(
    path: str | Path, chunk_size: int = 1000
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Stream (energies (k,), showers (k, V), theta (k,) or None, phi (k,) or None).

    Raises:
        DataError: if the layout is wrong or a chunk cannot be read (a corrupt file).
    """
    with open_h5(path) as f:
        n = check_layout(f, path)
        for start in range(0, n, chunk_size):
            sl = slice(start, min(n, start + chunk_size))
            try:
                energies = np.asarray(f["incident_energies"][sl], dtype=np.float64).reshape(-1)
                showers = np.asarray(f["showers"][sl])
                theta = (
                    np.asarray(f["incident_theta"][sl]).reshape(-1)
                    if "incident_theta" in f
                    else None
                )
                phi = np.asarray(f["incident_phi"][sl]).reshape(-1) if "incident_phi" in f else None
            except OSError as exc:
                raise DataError(
                    f"{path}: cannot read showers {sl.start}-{sl.stop - 1} (corrupt file?): {exc}"
                ) from None
            yield energies, showers, theta, phi
