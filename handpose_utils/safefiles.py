"""Files that are never half-written. Every file the course writes goes through here.

* :func:`atomic_write`: a temporary beside the target, fsynced, renamed over it; a reader sees
  the old file or the new one. Each writer's temporary has its own name,
  ``.<name>.<pid>-<host>.<random>.tmp``, so two processes writing one file both succeed.
* :func:`remove_stale_temporaries`: what killed writers left, by one rule (:func:`is_stale`).
* :func:`file_lock`: writers that must not interleave take turns (one download, one split).
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


def _host() -> str:  # a pid means something only on the machine that wrote it
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_path(path: str | Path, suffix: str = ".tmp") -> Path:
    """A new, empty temporary file beside ``path``, named after its writer."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-{_host()}.", suffix=suffix,
                                dir=path.parent)
    os.close(fd)
    return Path(name)


def write_error(path: Path, err: BaseException) -> str:
    full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or \
        "unexpected pos" in str(err)  # torch.save's wording for a full disk
    hint = ("The disk (or the Drive quota) is probably full: free some space (old runs, "
            "previous-* folders) or write to another disk." if full else
            "Check that the folder exists, is writable (not a read-only mount) and has space.")
    return (f"could not write {path}: {type(err).__name__}: {err}. {path.name} was left as it "
            f"was. {hint}")


def atomic_write(path: str | Path, write: Callable, *, mode: str = "wb",
                 error: type[Exception] = WriteError) -> Path:
    """``write(f)`` into a temporary, then rename it to ``path``. A failure raises ``error``
    naming the file and the reason, and leaves ``path`` as it was."""
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
    return atomic_write(path, lambda f: json.dump(obj, f, indent=indent), mode="w")


def _pattern(name: str | tuple | None) -> re.Pattern:
    names = (name,) if isinstance(name, str) else name
    stem = "|".join(map(re.escape, names)) if names else ".+?"
    return re.compile(rf"^\.(?P<name>{stem})\.(?:(?P<pid>\d+)(?:-(?P<host>[0-9a-f]{{8}}))?\.)?"
                      r"(?:[a-z0-9_]+\.)?(?:tmp|npz)$")


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # Windows: os.kill would end the process, not ask about it
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except PermissionError:  # exists, owned by someone else
        return True
    except (ProcessLookupError, OverflowError, OSError):
        return False
    return True


def is_stale(path: Path, now: float | None = None, stale_s: float = STALE_S,
             name: str | tuple | None = None) -> bool:
    """The one rule: never while its writer (a process of this machine) runs; at once when its
    writer has exited; otherwise (another machine, an old name) once untouched for ``stale_s``."""
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
    """Delete the stale temporaries in ``folder`` (of ``name``, a name or a tuple, when given)
    and log what was freed: each can be as big as a checkpoint or a cache."""
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
    """An exclusive lock on ``.<name>.lock`` beside ``path`` while the block runs (the small
    file stays: deleting it would let a newcomer lock a second one). POSIX ``flock``: the kernel
    releases it when its holder dies. Without locks (Windows, some mounts) it only waits for
    nothing: unique temporaries still keep every file whole."""
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
            except OSError as err:  # a file system without locks (some network mounts)
                if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                yield
                return
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
