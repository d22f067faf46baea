"""The on-disk form of results: ``analysis.json`` + ``arrays.npz``, written atomically as a pair, read defensively.

Layout of a results folder ``OUT`` (what :func:`write_results` leaves after a completed save)::

    OUT/analysis.json   everything but arrays (standard JSON, no NaN); records the SHA-256 of its arrays file
    OUT/arrays.npz      the arrays, one ``<key>.npy`` member per array referenced as {"__array__": key}

**Atomic as a pair.** ``analysis.json`` is the single commit point: it names its arrays by checksum. A save writes the
new arrays in full to a hidden, content-addressed file ``OUT/.arrays-<sha256>.npz`` (fsynced, then renamed into
place, the folder fsynced), then replaces ``analysis.json`` atomically (the commit), then renames the hidden arrays
file onto ``arrays.npz``. Whatever instant the writer dies at (``kill -9``, power loss after the fsyncs), the folder
holds either the old pair or the new JSON with its arrays under ``arrays.npz`` or under the hidden name; a reader
(:func:`read_results`) takes the arrays whose SHA-256 the JSON records from ``arrays.npz`` or, failing that, from
the hidden file, so it sees the old results or the new ones, never a mix. The next save (under the lock) finishes an
interrupted one: it moves a committed hidden arrays file onto ``arrays.npz`` and deletes every other leftover
(``.analysis.json.*.tmp``, ``.arrays.npz.*.tmp``, unreferenced ``.arrays-*.npz``). Readers never write and take no
lock; one whose JSON was replaced by a newer save while it read simply reads again.

**One writer at a time.** :func:`lock_output` takes an exclusive ``fcntl.flock`` on ``OUT/.energyscope.lock`` (which
holds the writer's pid and is deleted when the lock is released); a second writer gets :class:`OutputLockedError`
naming the first one's pid. The kernel drops the lock when its process dies, so a lock can never go stale (a
leftover lock file from a killed writer is simply reused). The lock is re-entrant within one thread, so a caller may
hold it for a whole run around :func:`write_results`. Where ``fcntl`` is missing (Windows) no lock is taken.

**Reading hostile files.** Every failure is one :class:`AnalysisFormatError` naming the file and the problem, with
memory bounded by the limits below: ``analysis.json`` is at most :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH`
levels deep and must be a JSON object with a valid ``arrays_sha256`` (saves without one, from before checksums, are
refused: run the analysis again); the arrays file is hashed in a stream and then read from the same open file, so
nothing unverified is ever used; its members' declared uncompressed sizes must total at most
``min(max_array_bytes, max(max_expansion × size on disk, SMALL_ARCHIVE_BYTES))`` before anything is decompressed
(zip bombs); each member's ``.npy`` header is parsed here (no pickle, no object dtype) and must declare exactly the
bytes the member holds, which are then read in bounded chunks and CRC-checked. Members the JSON never refers to
are not decompressed (an encoder that gave up half-way may leave such arrays; they are covered by the checksum and
harmless). Files that are not regular files (a FIFO, a device) are refused without being read.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np

from energyscope.errors import BadArgumentError, EnergyscopeError
from energyscope.io.codec import (  # the document's format; re-exported for callers of this module
    ARRAYS_NAME, FORMAT_NAME, FORMAT_VERSION, JSON_NAME, MAX_JSON_DEPTH, AnalysisFormatError, check_depth, json_bytes,
    round_trip)

try:  # POSIX only; without it (Windows) lock_output takes no lock
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".energyscope.lock"

#: Largest ``analysis.json`` read (bytes); the JSON holds no arrays, so real ones are far smaller.
MAX_JSON_BYTES = 256 * 2**20
#: Default cap on the total uncompressed size of the arrays (bytes).
MAX_ARRAY_BYTES = 4 * 2**30
#: Default cap on uncompressed size / size on disk of the arrays file (real arrays compress far less)...
MAX_EXPANSION = 200
#: ... except that an archive may always expand to this many bytes (small constant arrays compress ~1000:1).
SMALL_ARCHIVE_BYTES = 64 * 2**20
#: Largest ``.npy`` header accepted (bytes; numpy's own default limit).
MAX_NPY_HEADER = 10_000
_CHUNK = 16 * 2**20
_READ_ATTEMPTS = 5  # a reader racing writers re-reads a JSON replaced under it this often before giving up
_SHA_RE = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")


class OutputLockedError(EnergyscopeError, RuntimeError):
    """Another writer holds the results folder (see :func:`lock_output`); the message names it."""


class _ChecksumMismatch(AnalysisFormatError):
    """No arrays file matches the checksum ``analysis.json`` records."""


# ---------------------------------------------------------------------------------------------------------------------
# Atomic file writing
# ---------------------------------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a fresh hidden temp file ``.<name>.<token>.tmp`` in ``directory``, fsynced; returns it."""
    tmp = Path(directory) / f".{name}.{secrets.token_hex(8)}.tmp"
    # O_EXCL: never reuse a file; mode 0o666 minus the umask, like any file the user writes (mkstemp would give 0600)
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _unlink_quiet(tmp)
        raise
    return tmp


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path.parent, path.name, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    _fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------------------------------------
# The writer's lock
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Held:
    """A lock this process holds: the locked file's descriptor and path, and who took it (re-entrancy count)."""

    fd: int
    path: Path
    pid: int
    thread: int
    count: int = 1


_HELD: dict[tuple[int, int], _Held] = {}
_HELD_GUARD = threading.Lock()


def _busy(directory: Path, pid: int | None) -> OutputLockedError:
    who = f"another energyscope process (pid {pid})" if pid is not None else "another energyscope process"
    return OutputLockedError(f"{who} is writing to {str(directory)!r}; wait for it to finish or choose another "
                             "output folder")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _acquire(directory: Path) -> tuple[int, Path]:
    """flock ``directory/LOCK_NAME`` without waiting; returns (fd, path). Raises :class:`OutputLockedError`.

    The lock file is deleted on release, so after taking the lock we check that the path still names the file we
    locked (another writer may have released and deleted it between our open and our flock); if not, we retry.
    """
    path = directory / LOCK_NAME
    for _ in range(100):
        fd = os.open(str(path), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise _busy(directory, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.stat(str(path)), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd, path
        os.close(fd)
    raise _busy(directory, None)


def _release(held: _Held) -> None:
    """Delete the lock file (while still holding it, so no one can lock a file about to vanish), then unlock."""
    try:
        if os.path.samestat(os.stat(str(held.path)), os.fstat(held.fd)):
            os.unlink(str(held.path))
    except OSError:
        pass
    finally:
        os.close(held.fd)


@contextlib.contextmanager
def lock_output(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive writer's lock on results folder ``directory`` (created if needed) for the ``with`` block.

    Raises :class:`OutputLockedError` ("another energyscope process (pid N) is writing to DIR") at once, without
    waiting, when another process (or another thread of this one) holds it. Re-entrant within a thread: hold it
    around a whole run and :func:`write_results` inside it simply re-enters. The lock file ``.energyscope.lock``
    exists only while the lock is held; a process that dies loses the lock at once (kernel ``flock``).
    Yields the directory as a :class:`~pathlib.Path`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - no flock on this platform: writers are not serialised
        yield directory
        return
    st = os.stat(str(directory))
    key = (st.st_dev, st.st_ino)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():
            if held.thread != threading.get_ident():
                raise OutputLockedError(f"another thread of this process (pid {held.pid}) is writing to "
                                        f"{str(directory)!r}")
            held.count += 1
        else:
            fd, path = _acquire(directory)
            held = _HELD[key] = _Held(fd, path, os.getpid(), threading.get_ident())
    try:
        yield directory
    finally:
        with _HELD_GUARD:
            held.count -= 1
            if held.count == 0:
                if _HELD.get(key) is held:
                    del _HELD[key]
                _release(held)


# ---------------------------------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------------------------------
def _staged_name(sha: str) -> str:
    """The hidden, content-addressed name the arrays with SHA-256 ``sha`` wait under until they become arrays.npz."""
    return f".arrays-{sha}.npz"


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _committed_sha(directory: Path) -> str | None:
    """The arrays checksum the current ``analysis.json`` records, or None (no file, unreadable, no checksum)."""
    try:
        doc = _parse_json(directory / JSON_NAME)
    except (OSError, AnalysisFormatError):
        return None
    sha = doc.get("arrays_sha256")
    return sha if isinstance(sha, str) and _SHA_RE.fullmatch(sha) else None


def _debris(directory: Path) -> list[Path]:
    """Leftovers of interrupted saves: temp files and staged arrays files (never the lock file or the results)."""
    found: list[Path] = []
    for pattern in (f".{JSON_NAME}.*.tmp", f".{ARRAYS_NAME}.*.tmp", ".arrays-*.npz"):
        found.extend(directory.glob(pattern))
    return found


def _settle(directory: Path) -> None:
    """Finish or undo an interrupted save (call with the lock held): if ``analysis.json`` names staged arrays, move
    them onto ``arrays.npz`` (the save had committed); then delete every other leftover."""
    sha = _committed_sha(directory)
    if sha is not None and (directory / _staged_name(sha)).is_file():
        os.replace(directory / _staged_name(sha), directory / ARRAYS_NAME)
    for p in _debris(directory):
        _unlink_quiet(p)
    _fsync_dir(directory)


def _stage_arrays(directory: Path, sha: str, npz: bytes) -> None:
    """Write the arrays in full under their hidden content-addressed name (temp file, fsync, rename, fsync dir)."""
    tmp = _write_temp(directory, ARRAYS_NAME, npz)
    try:
        os.replace(tmp, directory / _staged_name(sha))
    except BaseException:
        _unlink_quiet(tmp)
        raise
    _fsync_dir(directory)


def write_results(directory: str | os.PathLike, doc: dict, arrays: Mapping[str, np.ndarray]) -> Path:
    """Save ``doc`` (JSON-able) and ``arrays`` (name -> numeric/string array) as ``analysis.json`` + ``arrays.npz``.

    The pair changes in one atomic step (see the module docstring): arrays staged under ``.arrays-<sha256>.npz``,
    then ``analysis.json`` (recording ``arrays_sha256``) replaced — the commit — then the staged file renamed onto
    ``arrays.npz``. Runs under :func:`lock_output` (so a concurrent writer gets :class:`OutputLockedError`) and first
    finishes or cleans up any interrupted save. An exception before the commit leaves the previous results exactly
    as they were; after it, the new ones. Returns the directory.
    """
    directory = Path(directory)
    npz = _npz_bytes(arrays)
    sha = hashlib.sha256(npz).hexdigest()
    text = json_bytes({**doc, "arrays_sha256": sha})
    with lock_output(directory):
        _settle(directory)
        try:
            _stage_arrays(directory, sha, npz)
            atomic_write_bytes(directory / JSON_NAME, text)  # the commit point
            os.replace(directory / _staged_name(sha), directory / ARRAYS_NAME)
            _fsync_dir(directory)
        except BaseException:
            with contextlib.suppress(Exception):  # keep the original error; a committed save is still completed
                _settle(directory)
            raise
    return directory


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------
def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO, never streams a device)."""
    fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AnalysisFormatError(f"{str(path)!r} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _parse_json(path: Path) -> dict:
    """Read ``path`` (at most :data:`MAX_JSON_BYTES`) as a JSON object nested at most :data:`MAX_JSON_DEPTH` deep."""
    return _read_json(path)[0]


def _read_json(path: Path) -> tuple[dict, os.stat_result]:
    """:func:`_parse_json`, and the stat of the file that was read (to tell whether it was replaced since)."""
    with _open_regular(path) as fh:
        st = os.fstat(fh.fileno())
        raw = fh.read(min(st.st_size, MAX_JSON_BYTES) + 1)  # read(n) allocates n bytes up front: ask for what is there
    if len(raw) > MAX_JSON_BYTES:
        raise AnalysisFormatError(f"{str(path)!r} is larger than {MAX_JSON_BYTES} bytes; energyscope never writes "
                                  "that (the JSON holds no arrays)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise AnalysisFormatError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise AnalysisFormatError(f"{str(path)!r} is nested too deeply to parse; energyscope never writes that "
                                  "(a damaged or crafted file)") from None
    if not isinstance(doc, dict):
        raise AnalysisFormatError(f"{str(path)!r} holds a JSON {type(doc).__name__}, not the object of an energyscope "
                                  "analysis")
    check_depth(doc, repr(str(path)))
    return doc, st


def _check_document(jpath: Path, doc: dict) -> str:
    """Check format, version and checksum entry of a parsed ``analysis.json``; returns the arrays' SHA-256."""
    if doc.get("format") != FORMAT_NAME:
        raise AnalysisFormatError(f"{JSON_NAME} is not an energyscope analysis (format={doc.get('format')!r})")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise AnalysisFormatError(f"{JSON_NAME} has format version {version!r}; this energyscope reads up to "
                                  f"{FORMAT_VERSION}")
    sha = doc.get("arrays_sha256")
    if sha is None:
        raise AnalysisFormatError(f"{str(jpath)!r} records no checksum of its arrays (written by an older energyscope, "
                                  "or altered); run `energyscope analyze` again")
    if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
        raise AnalysisFormatError(f"{str(jpath)!r} has a malformed arrays_sha256 {sha!r} (expected 64 hex digits)")
    return sha


def _sha256_of(fh: BinaryIO) -> str:
    """SHA-256 of an open binary file from its start, read in bounded chunks."""
    fh.seek(0)
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(2**20), b""):
        h.update(chunk)
    return h.hexdigest()


def _open_matching_arrays(directory: Path, jpath: Path, sha: str, max_disk_bytes: int) -> BinaryIO:
    """Open the arrays file whose SHA-256 is ``sha``: ``arrays.npz``, else the staged copy an interrupted save left
    (else ``arrays.npz`` once more if it was replaced meanwhile). Returns the open file at offset 0: the bytes that
    are then read are the bytes that were hashed. A file over ``max_disk_bytes`` is refused unread."""
    apath, staged = directory / ARRAYS_NAME, directory / _staged_name(sha)
    seen: list[os.stat_result] = []
    for path in (apath, staged, apath):
        try:
            fh = _open_regular(path)
        except FileNotFoundError:
            continue
        st = os.fstat(fh.fileno())
        if any(os.path.samestat(st, s) for s in seen):
            fh.close()
            continue
        seen.append(st)
        try:
            if st.st_size > max_disk_bytes:
                raise AnalysisFormatError(f"{str(path)!r} is {st.st_size} bytes, more than the {max_disk_bytes} "
                                          "bytes of arrays allowed; load with a larger max_array_bytes if genuine")
            if _sha256_of(fh) == sha:
                fh.seek(0)
                return fh
        except BaseException:
            fh.close()
            raise
        fh.close()
    if not seen:
        raise AnalysisFormatError(f"{str(apath)!r} is missing; run `energyscope analyze` first")
    raise _ChecksumMismatch(
        f"{str(apath)!r} does not belong to {str(jpath)!r} (checksum mismatch); the files come from different "
        "saves — run the analysis again")


def _replaced(path: Path, st: os.stat_result) -> bool:
    """Whether ``path`` no longer names the file ``st`` describes."""
    try:
        return not os.path.samestat(os.stat(str(path)), st)
    except OSError:
        return True


def _expansion_limit(disk_bytes: int, max_array_bytes: int, max_expansion: float | None) -> int:
    """Most bytes the arrays may expand to: ``max_array_bytes``, and (unless ``max_expansion`` is None) at most
    ``max(max_expansion × disk_bytes, SMALL_ARCHIVE_BYTES)``."""
    if max_expansion is None:
        return int(max_array_bytes)
    return int(min(max_array_bytes, max(max_expansion * disk_bytes, SMALL_ARCHIVE_BYTES)))


def _checked_members(zf: zipfile.ZipFile, where: str, limit: int) -> dict[str, zipfile.ZipInfo]:
    """``{key: ZipInfo}`` of an npz's ``<key>.npy`` members, refusing odd members and declared sizes over ``limit``."""
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or name[:-4] in members:
            raise AnalysisFormatError(f"{where} has an unexpected member {name!r} (an npz holds one <key>.npy per "
                                      "array, each once)")
        if info.flag_bits & 0x1:
            raise AnalysisFormatError(f"{where} has an encrypted member {name!r}")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise AnalysisFormatError(f"{where} member {name!r} uses compression method {info.compress_type}; "
                                      "energyscope writes only stored or deflated members")
        members[name[:-4]] = info
        total += info.file_size
    if total > limit:
        raise AnalysisFormatError(
            f"{where} declares {total} bytes of arrays, more than the {limit} bytes allowed for a file of this size "
            "(a zip bomb?); refusing to decompress it. For genuine results that large, load with a larger "
            "max_array_bytes / max_expansion")
    return members


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise BadArgumentError(f"the member ends inside its {what}")
    return data


def _npy_header(fh: BinaryIO) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse an ``.npy`` header from ``fh``: (dtype, shape, fortran_order, header length in bytes). Refuses object
    dtypes (they would need pickle) and anything that is not a plain header."""
    magic = _read_exact(fh, 8, "header")
    if magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise BadArgumentError("it is not an .npy array (bad magic or version)")
    size_format = "<H" if magic[6] == 1 else "<I"
    length_field = _read_exact(fh, struct.calcsize(size_format), "header")
    (hlen,) = struct.unpack(size_format, length_field)
    if hlen > MAX_NPY_HEADER:
        raise BadArgumentError(f"its header is {hlen} bytes (more than {MAX_NPY_HEADER})")
    text = _read_exact(fh, hlen, "header").decode("utf-8" if magic[6] == 3 else "latin1")
    d = ast.literal_eval(text)
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise BadArgumentError("its header is not a dict of descr, fortran_order and shape")
    shape, fortran = d["shape"], d["fortran_order"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                               for n in shape):
        raise BadArgumentError(f"its shape {shape!r} is not a tuple of non-negative integers")
    if not isinstance(fortran, bool):
        raise BadArgumentError(f"its fortran_order {fortran!r} is not a bool")
    dtype = np.lib.format.descr_to_dtype(d["descr"])
    if dtype.hasobject:
        raise BadArgumentError("it holds Python objects (object dtype), which energyscope never saves and will not unpickle")
    return dtype, shape, fortran, 8 + len(length_field) + hlen


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """Read one member: the header must account for exactly the member's declared size; data read in chunks."""
    with zf.open(info) as fh:
        dtype, shape, fortran, offset = _npy_header(fh)
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise BadArgumentError(f"its header declares shape {shape} of {dtype} ({nbytes} bytes) but the member holds "
                             f"{info.file_size - offset} bytes of data")
        flat = np.empty(nbytes, dtype=np.uint8)
        view, done = memoryview(flat), 0
        while done < nbytes:
            chunk = fh.read(min(_CHUNK, nbytes - done))
            if not chunk:
                raise BadArgumentError("the member ends before its data does")
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        if fh.read(1):  # ZipExtFile stops at the declared size and checks the CRC there
            raise BadArgumentError("the member holds more data than it declares")
    if dtype.itemsize == 0 or nbytes == 0:
        return np.zeros(shape, dtype=dtype, order="F" if fortran else "C")
    return flat.view(dtype).reshape(shape, order="F" if fortran else "C")


class _NpzArrays(Mapping[str, np.ndarray]):
    """The arrays of a verified, open npz, each read (and checked) on first access and then kept."""

    def __init__(self, fh: BinaryIO, where: str, limit: int) -> None:
        self.where = where
        try:
            self._zip = zipfile.ZipFile(fh)
        except Exception as exc:  # noqa: BLE001 - whatever the zip layer raises on hostile bytes is one clear error
            raise AnalysisFormatError(f"{where} is not a readable npz archive: {exc}") from None
        self._members = _checked_members(self._zip, where, limit)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            info = self._members[key]
            try:
                self._cache[key] = _read_npy(self._zip, info)
            except Exception as exc:  # noqa: BLE001 - zip/zlib/npy errors on hostile bytes: one clear error
                raise AnalysisFormatError(f"{self.where}: array {key!r} cannot be read: "
                                          f"{type(exc).__name__}: {exc}") from None
        return self._cache[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def close(self) -> None:
        self._zip.close()


def read_results(directory: str | os.PathLike, build: Callable[[dict, Mapping[str, np.ndarray]], T], *,
                 max_array_bytes: int | None = None, max_expansion: float | None = MAX_EXPANSION) -> T:
    """Read the results :func:`write_results` saved in ``directory`` and return ``build(doc, arrays)``.

    ``doc`` is the parsed ``analysis.json`` (format, version and checksum checked); ``arrays`` maps keys to the
    verified arrays, each read on first access and only during ``build``. ``max_array_bytes`` (default
    :data:`MAX_ARRAY_BYTES`) caps the total uncompressed size of the arrays; ``max_expansion`` (default
    :data:`MAX_EXPANSION`, None to disable) caps it relative to the file's size on disk. Every problem — missing
    files, invalid or hostile JSON, arrays from another save, a zip bomb, malformed members, a structure ``build``
    cannot use — is one :class:`AnalysisFormatError` that names it.
    """
    directory = Path(directory)
    jpath = directory / JSON_NAME
    if not directory.is_dir():
        raise AnalysisFormatError(f"no results directory {str(directory)!r}")
    if not jpath.is_file():
        raise AnalysisFormatError(f"{str(jpath)!r} is missing; run `energyscope analyze` first")
    limit_total = MAX_ARRAY_BYTES if max_array_bytes is None else max_array_bytes
    for attempt in range(_READ_ATTEMPTS):
        doc, jstat = _read_json(jpath)
        if not (directory / ARRAYS_NAME).exists() and not any(directory.glob(".arrays-*.npz")):
            raise AnalysisFormatError(f"{str(directory / ARRAYS_NAME)!r} is missing; run `energyscope analyze` first")
        sha = _check_document(jpath, doc)
        try:  # stored (uncompressed) members make the file a little larger than its arrays: allow the zip overhead
            fh = _open_matching_arrays(directory, jpath, sha, limit_total + SMALL_ARCHIVE_BYTES)
            break
        except _ChecksumMismatch:
            if attempt == _READ_ATTEMPTS - 1 or not _replaced(jpath, jstat):
                raise
            # a writer committed newer results while we read (its old arrays are gone): read those instead
    with fh:
        limit = _expansion_limit(os.fstat(fh.fileno()).st_size, limit_total, max_expansion)
        arrays = _NpzArrays(fh, repr(str(directory / ARRAYS_NAME)), limit)
        try:
            return build(doc, arrays)
        except AnalysisFormatError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) as exc:
            raise AnalysisFormatError(f"{str(jpath)!r} does not have the structure of an energyscope analysis: "
                                      f"{type(exc).__name__}: {exc}") from None
        finally:
            arrays.close()


__all__ = ["AnalysisFormatError", "OutputLockedError", "FORMAT_NAME", "FORMAT_VERSION", "JSON_NAME", "ARRAYS_NAME",
           "MAX_JSON_DEPTH",
           "LOCK_NAME", "atomic_write_bytes", "lock_output", "read_results", "round_trip", "write_results"]
