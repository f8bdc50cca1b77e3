"""Files that are never half-written: atomic writes, one rule for leftovers, and a lock.

Every file the course writes (checkpoints, records, splits, caches, downloads, synthetic data)
goes through here:

* :func:`atomic_write` writes a temporary file beside the target, fsyncs it and renames it over
  the target: a reader sees the old file or the new one, never half of one. The temporary's name
  is unique per writer, ``.<name>.<pid>-<host>.<random>.tmp``, so two processes writing the same
  file both succeed (the later rename wins, and each file is whole).
* :func:`remove_stale_temporaries` deletes what killed writers left, by one rule: a temporary of
  this machine is stale once its process has exited; any other (another machine sharing the
  folder, Windows, an old name without a host) once unmodified for ``STALE_S`` seconds.
* :func:`file_lock` serialises the writers that must not interleave (a download into one
  ``.part`` file, a compute-then-write of the same split file).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "write_json", "temporary_path", "remove_stale_temporaries",
           "file_lock", "WriteError", "STALE_S"]

STALE_S = 600  # a temporary nobody has touched for ten minutes belongs to nobody


class WriteError(OSError):
    """A file could not be written; the message names it, the reason, and what to do."""


def _host() -> str:
    """Eight hex digits naming this machine: a pid means something only where it was written."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_path(path: str | Path, suffix: str = ".tmp") -> Path:
    """A new, empty, uniquely named temporary file beside ``path`` (the caller replaces or
    deletes it). Its name tells :func:`remove_stale_temporaries` who wrote it."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-{_host()}.", suffix=suffix,
                                dir=path.parent)
    os.close(fd)
    return Path(name)


def write_error(path: Path, err: BaseException) -> str:
    """A message for a failed write of ``path``: what failed and what to do."""
    full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or \
        "unexpected pos" in str(err)  # torch.save's wording for a full disk
    hint = ("The disk (or the Drive quota) is probably full: free some space (old runs, "
            "previous-* folders) or write to another disk." if full else
            "Check that the folder exists, is writable (not a read-only mount) and has space.")
    return (f"could not write {path}: {type(err).__name__}: {err}. {path.name} was left as it "
            f"was. {hint}")


def atomic_write(path: str | Path, write: Callable, *, mode: str = "wb",
                 error: type[Exception] = WriteError) -> Path:
    """Call ``write(f)`` on a unique temporary file beside ``path``, fsync it and rename it to
    ``path``; returns ``path``. A failure raises ``error`` naming the file and the reason, and
    leaves ``path`` as it was (no temporary remains)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
    except OSError as err:
        raise error(write_error(path, err)) from err
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception):  # a KeyboardInterrupt stays what it is
            raise error(write_error(path, err)) from err
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def write_json(path: str | Path, obj, indent: int | None = None) -> Path:
    """``json.dump(obj)`` to ``path`` atomically."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=indent), mode="w")


def _pattern(name: str | tuple | None) -> re.Pattern:
    """``.<name>.<pid>-<host>.<random>.tmp`` (or ``.npz``); older names lack host or pid."""
    names = (name,) if isinstance(name, str) else name
    stem = "|".join(map(re.escape, names)) if names else ".+?"
    return re.compile(rf"^\.(?P<name>{stem})\.(?:(?P<pid>\d+)(?:-(?P<host>[0-9a-f]{{8}}))?\.)?"
                      r"(?:[a-z0-9_]+\.)?(?:tmp|npz)$")


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # Windows: os.kill would end the process, not ask about it
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, OSError):
        return False
    return True


def is_stale(path: Path, now: float | None = None, stale_s: float = STALE_S,
             name: str | tuple | None = None) -> bool:
    """The one rule for a temporary: never while a process of this machine named in it runs
    (however long its write takes); at once when it names this machine and its process has
    exited; otherwise (another machine sharing the folder, an old name) once unmodified for
    ``stale_s`` seconds."""
    match = _pattern(name).match(path.name)
    if match is None:
        return False
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return False
    ours = match["host"] in (None, _host())
    if match["pid"] and ours and _process_alive(int(match["pid"])):
        return False
    if match["pid"] and match["host"] == _host() and os.name == "posix":
        return True
    return (now or time.time()) - mtime > stale_s


def remove_stale_temporaries(folder: str | Path, name: str | tuple | None = None,
                             log: Callable | None = print, stale_s: float = STALE_S) -> list[Path]:
    """Delete the stale temporaries (:func:`is_stale`) in ``folder``, only those of ``name`` (a
    file name or a tuple of them) when given. Returns the removed paths and logs what was freed
    (a temporary can be as big as a checkpoint or a cache)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed, size = time.time(), [], 0
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        try:
            nbytes = path.stat().st_size
            if not is_stale(path, now, stale_s, name):
                continue
            path.unlink()
        except OSError:  # gone meanwhile, or not ours to delete
            continue
        removed.append(path)
        size += nbytes
    if removed and log:
        log(f"removed {len(removed)} stale temporary file(s) of interrupted writes from {folder} "
            f"({size / 1e6:.1f} MB): {', '.join(p.name for p in removed)}")
    return removed


@contextlib.contextmanager
def file_lock(path: str | Path, timeout_s: float = 3600.0):
    """Hold an exclusive lock named after ``path`` (the file ``.<name>.lock`` beside it) while
    the block runs, so that writers of one file take turns. POSIX ``flock``: released by the
    kernel when the holder dies, so a killed process never leaves it locked. Elsewhere a no-op."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: unique temporaries still keep every file whole
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WriteError(f"{path} is locked by another process for more than "
                                     f"{timeout_s:.0f} s (lock file {f.name}); if none runs, "
                                     "delete the lock file") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
