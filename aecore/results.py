"""Stored results: one folder per run, written atomically, keyed on what
produced them.

`results/<run-name>/` holds `result.json` (config, key, per-epoch history,
test metrics, environment, and the name and SHA-256 of the weights file)
and `weights-<sha>.pt`. The weights are written first under a new name,
then `result.json` is replaced in one `os.replace`; an interrupted write
therefore leaves the previous result whole. While training, a
`checkpoint.pt` (`checkpoints`) after every epoch lets an interrupted run
resume. A result is served only if its record checks out and its key
(`keys`) matches: changed settings, code or data are never served.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoints
from .errors import AecoreError
from .files import (  # noqa: F401
    ENV_RESULTS,
    regular_file_problem,
    results_root,
)
from .keys import (  # noqa: F401  (where training finds them)
    NUMERIC_MODULES,
    OUTSIDE_THE_KEY,
    code_version,
    make_key,
    run_key,
)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; a no-op where folders
    cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_prefix() -> str:
    """Temporary files name their writer, so a tidy-up removes only
    those of processes that are gone."""
    return f".tmp-{os.getpid()}-"


def _writer_alive(tmp: Path) -> bool:
    try:
        pid = int(tmp.name.split("-")[1])
    except (IndexError, ValueError):
        return False                     # an older name: nobody's
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                      # exists, owned by another user
        return True
    return True


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)          # mkstemp creates files private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_save_json(path: Path, obj) -> None:
    """Write JSON atomically. A non-finite number is refused (JSON has
    none: most parsers reject Python's `Infinity` and `NaN`)."""
    try:
        text = json.dumps(obj, indent=1, allow_nan=False)
    except ValueError:
        raise AecoreError(f"{path}: refusing to store a non-finite number "
                          "(NaN or infinity)") from None
    _atomic_write_bytes(path, text.encode())


# Every record has these; runs check the rest (`runs.run_problem`).
RECORD_FIELDS = ("name", "key", "config", "weights")
MAX_RECORD_BYTES = 64 * 2**20     # a run's record is well under 1 MB
MAX_WEIGHTS_BYTES = 2**30


def non_finite(value, where="") -> str | None:
    """The path of the first number in `value` (nested lists and dicts)
    that is NaN or infinite, or None. aecore never writes one, so one
    found means damage."""
    stack = [(value, where)]
    while stack:
        v, at = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return at or "a number"
        if isinstance(v, dict):
            stack += [(x, f"{at}.{k}" if at else str(k))
                      for k, x in v.items()]
        elif isinstance(v, list):
            stack += [(x, f"{at}[{i}]") for i, x in enumerate(v)]
    return None


def record_problem(record, folder_name: str) -> str | None:
    """Why a parsed result.json cannot be used, or None if it can: the
    fields every record has, its name equal to its folder's, and no
    non-finite number anywhere."""
    if not isinstance(record, dict):
        return f"holds a {type(record).__name__}, not a record"
    for field in RECORD_FIELDS:
        if field not in record:
            return f"has no {field!r} entry"
    weights = record["weights"]
    if not (isinstance(weights, dict)
            and isinstance(weights.get("sha256"), str)
            and (weights.get("kept") is False and weights.get("file") is None
                 or isinstance(weights.get("file"), str)
                 and weights["file"].startswith("weights-")
                 and "/" not in weights["file"]
                 and "\\" not in weights["file"])):
        return "has no valid 'weights' entry"
    if record["name"] != folder_name:
        return (f"names another run ({str(record['name'])[:80]!r}) than "
                "its folder")
    if not isinstance(record["key"], str):
        return "has no valid 'key'"
    if not isinstance(record["config"], dict):
        return "has no valid 'config'"
    bad = non_finite(record)
    if bad:
        return f"holds a non-finite number at {bad}"
    return None


@dataclass(frozen=True)
class Entry:
    """What the store holds under a name: `status` is 'valid', 'missing',
    'stale' or 'damaged'; `reason` says why it is not valid; `record` is
    the parsed record whenever it is a JSON object (also when stale or
    damaged: a stale record still says how long the run took)."""
    status: str
    reason: str = ""
    record: dict | None = None


class Store:
    """The results folder. Runs are addressed by name, validated by key
    and by the SHA-256 of their weights."""

    def __init__(self, root=None, warn=None):
        self.root = results_root(root)
        # one-line notices (an ignored checkpoint); stderr by default
        self.warn = warn or (lambda line: print(line, file=sys.stderr))
        self._sha_cache: dict[tuple, str] = {}
        self._held: set[str] = set()      # run locks this store holds

    def folder(self, name: str) -> Path:
        return self.root / name

    def check_writable(self, name: str | None = None) -> None:
        """Raise a one-line error unless results (and the run's folder,
        where it exists) can be written, and clear what would block the
        run's final writes (a folder or pipe where result.json or
        checkpoint.pt belongs). Called before any training, so a bad
        path costs seconds, not an epoch."""
        targets = [self.root]
        if name is not None and self.folder(name).exists():
            targets.append(self.folder(name))
        for folder in targets:
            if folder.exists() and not folder.is_dir():
                raise AecoreError(f"results path {folder} is not a folder; "
                                  f"point --results or ${ENV_RESULTS} at a "
                                  "folder")
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, probe = tempfile.mkstemp(dir=folder,
                                             prefix=_tmp_prefix())
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise AecoreError(f"results folder {folder} is not "
                                  f"writable ({exc.strerror or exc}); "
                                  "choose another with --results or "
                                  f"${ENV_RESULTS}") from None
        if name is None:
            return
        for file in ("result.json", "checkpoint.pt"):
            path = self.folder(name) / file
            if path.is_symlink() or (path.exists() and not path.is_file()):
                self._remove([path])
                if path.exists() or path.is_symlink():
                    raise AecoreError(f"{path} is not a file and cannot "
                                      "be removed; remove it by hand")

    def _parse(self, name: str) -> tuple[object, str | None]:
        """(parsed result.json or None, why it could not be parsed)."""
        path = self.folder(name) / "result.json"
        problem = regular_file_problem(path, MAX_RECORD_BYTES)
        if problem == "is missing":
            return None, problem
        if problem:
            return None, f"{path} {problem}"
        try:
            return json.loads(path.read_text()), None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            return None, f"{path} is not readable JSON"

    def _sha256(self, path: Path) -> str | None:
        if regular_file_problem(path, MAX_WEIGHTS_BYTES):
            return None
        st = path.stat()
        tag = (str(path), st.st_size, st.st_mtime_ns)
        if tag not in self._sha_cache:
            try:
                self._sha_cache[tag] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
            except OSError:
                return None
        return self._sha_cache[tag]

    def inspect(self, name: str, key: str, check=None) -> Entry:
        """The entry under `name`, valid only if its record checks out
        (`record_problem`, then `check(record)`: a problem or None), its
        key is `key`, and its weights match their SHA-256. result.json
        is read once."""
        record, problem = self._parse(name)
        where = self.folder(name) / "result.json"
        if problem == "is missing":
            return Entry("missing", f"no {where}")
        if problem:
            return Entry("damaged", problem)
        problem = record_problem(record, name)
        if problem is None and record["key"] == key and check:
            problem = check(record)
        if problem:
            return Entry("damaged", f"{where} {problem}",
                         record if isinstance(record, dict) else None)
        if record["key"] != key:
            return Entry("stale", f"{where} was made by another config, "
                         "code or data", record)
        if record["weights"].get("kept") is not False:
            weights = self.folder(name) / record["weights"]["file"]
            sha = self._sha256(weights)
            if sha is None:
                return Entry("damaged", f"{weights} is missing or not a "
                             "readable file", record)
            if sha != record["weights"]["sha256"]:
                return Entry("damaged", f"{weights} does not match the "
                             "SHA-256 in result.json", record)
        return Entry("valid", "", record)

    @contextmanager
    def lock(self, name: str, wait=True):
        """Hold the run's lock (`.lock` in its folder) while inside; with
        `wait` False, yield False at once when another process holds it.
        Whoever trains a run holds it, so no tidy-up ever removes a file
        a live writer is making."""
        try:
            import fcntl
        except ImportError:            # not POSIX: no locking
            yield True
            return
        if name in self._held:          # this store holds it already
            yield True
            return
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait
                                                 else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            self._held.add(name)
            try:
                yield True
            finally:
                self._held.discard(name)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def load(self, name: str, key: str, check=None) -> dict | None:
        """The record when valid (leftovers of interrupted writes are
        removed then), else None."""
        entry = self.inspect(name, key, check)
        if entry.status != "valid":
            return None
        self.tidy(name, keep=entry.record["weights"]["file"] or "")
        return entry.record

    def tidy(self, name: str, keep: str | None = None) -> None:
        """Remove what interrupted writes leave: temporary files of
        processes that are gone, and, given the weights file a valid
        record names (`keep`), any other weights file and the finished
        run's checkpoint (only when no other process holds the run's
        lock)."""
        folder = self.folder(name)
        if not folder.is_dir():
            return
        junk = [p for p in folder.glob(".tmp-*") if not _writer_alive(p)]
        if keep is not None:
            with self.lock(name, wait=False) as free:
                if free:
                    junk += [p for p in folder.glob("weights-*.pt")
                             if p.name != keep]
                    junk.append(folder / "checkpoint.pt")
                    self._remove(junk)
                    return
        self._remove(junk)

    @staticmethod
    def _remove(paths) -> None:
        for path in paths:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError:
                pass

    def check_free(self, name: str, config: dict) -> None:
        """Refuse to let a run overwrite the intact result of another
        config whose own name is this folder's (a hash collision of two
        configs). A record whose config does not name this folder, or a
        record of something else under a fixed name (the classifier),
        is replaced."""
        from .config import TrainConfig
        from .errors import ConfigError
        record, _ = self._parse(name)
        if not isinstance(record, dict) or record.get("config") == config:
            return
        try:
            other = TrainConfig.from_record(record.get("config"))
            mine = TrainConfig.from_record(config)
        except (ConfigError, TypeError):
            return
        if other.name != name or other.key_dict() == mine.key_dict():
            return
        diff = ", ".join(
            f"{k} {record['config'].get(k)!r} there, {v!r} here"
            for k, v in config.items() if record["config"].get(k) != v)
        raise AecoreError(
            f"{self.folder(name)} holds the result of another config "
            f"({diff}); it is kept. Train into another folder with "
            f"--results or ${ENV_RESULTS}")

    def weights(self, name: str, record: dict, map_location="cpu"):
        if record["weights"].get("kept") is False:
            raise AecoreError(
                f"{self.folder(name)}: the weights of this run were not "
                "kept (only its record); delete the folder and train it "
                "again with `python -m aecore train`")
        path = self.folder(name) / record["weights"]["file"]
        problem = regular_file_problem(path, MAX_WEIGHTS_BYTES)
        if problem:
            raise AecoreError(f"{path} {problem} (damaged weights); "
                              "train the run again")
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != record["weights"]["sha256"]:
            raise AecoreError(f"{path}: weights do not match result.json "
                              "(damaged); train the run again")
        try:
            return torch.load(io.BytesIO(payload), map_location=map_location,
                              weights_only=True)
        except Exception as exc:   # unpickling errors of every kind
            raise AecoreError(f"{path}: damaged weights ("
                              f"{type(exc).__name__}); train the run "
                              "again") from None

    def save(self, name: str, record: dict, state_dict,
             keep_weights=True) -> dict:
        """Write weights under a fresh name, then swap result.json.
        Without `keep_weights` only their SHA-256 is recorded."""
        self.check_free(name, record["config"])
        folder = self.folder(name)
        buf = io.BytesIO()
        torch.save(state_dict, buf)
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        if keep_weights:
            file = f"weights-{sha[:12]}.pt"
            _atomic_write_bytes(folder / file, buf.getvalue())
            weights = {"file": file, "sha256": sha}
        else:
            file, weights = "", {"file": None, "sha256": sha, "kept": False}
        record = {**record, "weights": weights}
        atomic_save_json(folder / "result.json", record)
        self.tidy(name, keep=file)   # old weights, checkpoint, temp files
        return record

    def save_checkpoint(self, name: str, payload: dict) -> None:
        _atomic_write_bytes(self.folder(name) / "checkpoint.pt",
                            checkpoints.encode(payload))

    def load_checkpoint(self, name: str, key: str) -> dict | None:
        """The checkpoint to resume from, or None. All or nothing: a
        checkpoint that fails its checksum or lacks anything needed is
        reported in one line and ignored, so the run starts afresh
        exactly as if it had never existed. Leftover temporary files of
        interrupted writes are removed first."""
        self.tidy(name)
        path = self.folder(name) / "checkpoint.pt"
        problem = regular_file_problem(path, MAX_WEIGHTS_BYTES)
        if problem == "is missing":
            return None
        payload, problem = (None, problem) if problem else \
            checkpoints.decode(path.read_bytes(), key)
        if problem:
            self.warn(f"aecore: ignoring {path}: it {problem}; starting "
                      "this run from epoch 1")
        return payload
