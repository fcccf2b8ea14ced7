"""Atomic file writes: every output appears complete or not at all, with the mode ``open()`` would give.

A stage writes into a temporary file in the destination folder and renames it into place only when
the write finished, so an interrupted job never leaves a half-written HDF5 or CSV that Snakemake or a
person would take for a result. Three things make that hold beyond the happy path:

- Mode: ``tempfile.mkstemp`` creates 0600 files whatever the umask; the finished file is given
  ``0o666 & ~umask`` (what ``open(path, 'w')`` gives) just before the rename.
- SIGTERM (what Snakemake, SLURM and ``kill`` send): a handler removes this process's live temporary
  files, then chains to the previous handler or, if there was none, dies of SIGTERM as it would have
  (exit status 143 in a shell). Installed only from the main thread (Python allows nothing else), and
  only where SIGTERM was not set to be ignored.
- SIGKILL and crashes cannot be caught, so temporary names carry the writer's host and pid
  (``.{stem}.{host}-{pid}.{random}.tmp{suffix}``): the next write of the same destination removes
  temporaries whose writer on this host is dead. Temporaries of other hosts (shared file systems) and of
  the older pid-less naming are removed only once untouched for :data:`STALE_FOREIGN_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

#: Temporaries whose writer cannot be checked (other host, no pid in the name) are stale after this long.
STALE_FOREIGN_SECONDS = 3600.0

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
#: temp path -> pid of the process that made it (a forked child must not remove its parent's files)
_LIVE_TEMPS: dict[Path, int] = {}
_LIVE_LOCK = threading.Lock()
_PREVIOUS_SIGTERM_HANDLER = None
_SIGTERM_INSTALLED = False


def _umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _umask_by_setting() -> int:
    """Read the umask the only portable way (set and restore); done once, at import."""
    old = os.umask(0o022)
    os.umask(old)
    return old


_IMPORT_UMASK = _umask_from_proc()
if _IMPORT_UMASK is None:
    _IMPORT_UMASK = _umask_by_setting()


def current_umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``; the import-time value elsewhere)."""
    umask = _umask_from_proc()
    return _IMPORT_UMASK if umask is None else umask


def _remove_live_temps(signum, frame) -> None:
    with _LIVE_LOCK:
        mine = [tmp for tmp, pid in _LIVE_TEMPS.items() if pid == os.getpid()]
    for tmp in mine:
        with contextlib.suppress(OSError):
            tmp.unlink()
    previous = _PREVIOUS_SIGTERM_HANDLER
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm_cleanup() -> None:
    global _PREVIOUS_SIGTERM_HANDLER, _SIGTERM_INSTALLED
    if _SIGTERM_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN or previous is None:  # ignored, or set outside Python: leave it alone
        return
    _PREVIOUS_SIGTERM_HANDLER = previous if previous is not signal.SIG_DFL else None
    signal.signal(signal.SIGTERM, _remove_live_temps)
    _SIGTERM_INSTALLED = True


def _pid_is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_temps(final: Path, suffix: str) -> list[Path]:
    """Remove temporaries of ``final`` left by killed writers (see the module docstring); return them."""
    stem, tail = re.escape(final.stem), re.escape(f".tmp{suffix}")
    ours = re.compile(rf"\.{stem}\.([A-Za-z0-9]+)-(\d+)\.[A-Za-z0-9_]+{tail}")
    legacy = re.compile(rf"\.{stem}\.[A-Za-z0-9_]{{8}}{tail}")
    removed = []
    try:
        candidates = [p for p in final.parent.iterdir() if p.name.startswith(f".{final.stem}.")]
    except OSError:
        return removed
    with _LIVE_LOCK:
        live = set(_LIVE_TEMPS)
    for candidate in candidates:
        if candidate in live:
            continue
        match = ours.fullmatch(candidate.name)
        stale = False
        if match and match[1] == _HOST:
            pid = int(match[2])
            stale = _pid_is_dead(pid) or pid == os.getpid()  # our own pid, yet not one of our live temps
        elif match or legacy.fullmatch(candidate.name):
            with contextlib.suppress(OSError):
                stale = time.time() - candidate.lstat().st_mtime > STALE_FOREIGN_SECONDS
        else:
            continue
        if stale and candidate.is_file() and not candidate.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block ends without error.

    The temporary file keeps the destination's suffix (h5py, PyAV and pandas pick formats by it). On an
    exception or SIGTERM the temporary file is removed and ``path`` is left as it was; the finished file
    gets the mode ``open()`` would give under the current umask.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    _install_sigterm_cleanup()
    remove_stale_temps(final, suffix)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.{_HOST}-{os.getpid()}.", suffix=f".tmp{suffix}",
                                    dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    with _LIVE_LOCK:
        _LIVE_TEMPS[tmp] = os.getpid()
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE_TEMPS.pop(tmp, None)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv_atomic(frame, path: str | os.PathLike, **kwargs) -> None:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)


def open_hdf5_for_reading(path: str | os.PathLike, what: str):
    """Open a stage's HDF5 output for reading; a missing or unreadable file is an
    :class:`~facemorphic.errors.InputFileError` naming it (``what``: "events file", ...)."""
    import h5py

    from .errors import InputFileError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{what} not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"not an HDF5 file: {exc}") from None
