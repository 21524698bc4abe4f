"""Files that cannot be torn: one atomic-write helper, a lock per run folder, and a
reader of append-only JSON-lines logs that survives a torn last line.

Every record the library writes (config.json, env.json, metrics.jsonl rewrites,
checkpoints, model.pt, evaluation and analysis JSON, results tables, benchmarks) goes
through `atomic_write_bytes` (directly or via the helpers below): the bytes go to a
uniquely named temporary file in the same folder, are fsync'ed, and the file is renamed
over the target, so a reader sees the old file or the new one, never half of one, and two
writers never share a temporary name.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, List, Optional

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "append_line",
           "read_jsonl", "TornFile", "RunLock", "RunLocked"]


class TornFile(ValueError):
    """A record file is damaged (a torn line, a truncated checkpoint); the message names it."""


class RunLocked(RuntimeError):
    """Another process holds the lock of a run folder."""


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write `data` to `path` atomically: unique temporary file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(text: str, path: Path) -> None:
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_json(obj: Any, path: Path, indent: Optional[int] = 1, sort_keys: bool = False) -> None:
    atomic_write_text(json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n", path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """`torch.save` through `atomic_write_bytes`."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(buf.getvalue(), path)


def append_line(line: str, path: Path) -> None:
    """Append one line to a JSON-lines log and fsync it (a crash tears at most this line)."""
    with open(path, "a") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path, repair: bool = False) -> List[dict]:
    """The records of a JSON-lines file. A torn *last* line (a write cut short) is dropped,
    and with `repair=True` the file is rewritten without it; a damaged line elsewhere is a
    `TornFile` error naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows, torn = [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                torn = True
                continue
            raise TornFile(f"{path}: line {i + 1} is not valid JSON ({line[:60]!r}); the file is damaged "
                           "in the middle, not just torn at the end: restore it from git or delete the run") from None
    if torn and repair:
        atomic_write_text("".join(json.dumps(r) + "\n" for r in rows), path)
    return rows


class RunLock:
    """An exclusive lock on a run folder (`<dir>/.lock`, `fcntl.flock`), so two processes
    never train or evaluate the same run at once. Re-entrant within a process. The lock
    dies with its process, so a killed run never leaves a stale lock behind."""

    _held: dict = {}

    def __init__(self, folder: Path, wait: float = 0.0):
        self.folder = Path(folder)
        self.wait = wait
        self._fh = None

    def __enter__(self) -> "RunLock":
        import fcntl

        key = str(self.folder.resolve())
        if key in RunLock._held:
            RunLock._held[key][1] += 1
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.folder / ".lock", "a+")
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    fh.close()
                    raise
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip()
                    fh.close()
                    raise RunLocked(f"run {self.folder.name} is being trained or evaluated by another process "
                                    f"({'pid ' + holder + ', ' if holder else ''}lock {self.folder / '.lock'}); "
                                    "wait for it to finish") from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")  # who holds it (for the error above, and to find the process)
        fh.flush()
        RunLock._held[key] = [fh, 1]
        return self

    @staticmethod
    def holder(folder: Path) -> Optional[int]:
        """The pid written by the last process that took the lock of `folder` (None if none)."""
        try:
            text = (Path(folder) / ".lock").read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def __exit__(self, *exc) -> bool:
        import fcntl

        key = str(self.folder.resolve())
        entry = RunLock._held.get(key)
        if entry is None:
            return False
        entry[1] -= 1
        if entry[1] == 0:
            fcntl.flock(entry[0].fileno(), fcntl.LOCK_UN)
            entry[0].close()
            del RunLock._held[key]
        return False
