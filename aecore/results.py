"""Stored results: one folder per run, written atomically, keyed on what
produced them.

`results/<run-name>/` holds `result.json` (config, key, per-epoch history,
test metrics, environment, and the name and SHA-256 of the weights file)
and `weights-<sha>.pt`. The weights are written first under a new name,
then `result.json` is replaced in one `os.replace`; an interrupted write
therefore leaves the previous result whole. While training, a
`checkpoint.pt` after every epoch lets an interrupted run resume.

A result is valid only if its key matches: the SHA-256 of the run's config,
the training code (the syntax trees of the modules that produce results,
so comments and docstrings do not count) and the data files. Changed
settings, code or data are never served from stale results.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from .errors import AecoreError

ENV_RESULTS = "AECORE_RESULTS"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Modules whose code decides what a training run produces: every aecore
# module that `train` and `runs` import, directly or not, except the two
# below (tests/test_train.py checks this with the import graph).
TRAINING_MODULES = ("data", "models", "metrics", "train", "classifier",
                    "runs")
NOT_RESULT_CHANGING = {
    "results": "stores and checks results; computes no numbers",
    "errors": "exception classes",
}


def results_root(root=None) -> Path:
    """`root`, else $AECORE_RESULTS, else `results/` at the project root."""
    if root is not None:
        return Path(root)
    if os.environ.get(ENV_RESULTS):
        return Path(os.environ[ENV_RESULTS])
    return PROJECT_ROOT / "results"


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=8)
def code_version(modules: tuple[str, ...] = TRAINING_MODULES) -> str:
    """Hash of the modules' syntax trees (docstrings excluded)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in modules:
        tree = _strip_docstrings(ast.parse((here / f"{name}.py").read_text()))
        h.update(ast.dump(tree).encode())
    return h.hexdigest()[:16]


def make_key(config: dict, data_fingerprint: str,
             modules: tuple[str, ...] = TRAINING_MODULES) -> str:
    """The key of a result: config, code of `modules`, and data."""
    blob = json.dumps({"config": config, "code": code_version(modules),
                       "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
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


def atomic_torch_save(path: Path, obj) -> str:
    """Save with torch.save atomically; return the payload's SHA-256."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    _atomic_write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


# Checkpoints: a header line, the payload's SHA-256, then torch.save bytes.
CHECKPOINT_MAGIC = b"aecore-checkpoint-1\n"
CHECKPOINT_FIELDS = ("key", "model", "opt", "sched", "gen", "rng", "history")
# Every record has these; runs add "history" and "test" (see runs.py).
RECORD_FIELDS = ("name", "key", "config", "weights")
UNREADABLE = object()   # result.json exists but is not JSON


def record_problem(record, required=()) -> str | None:
    """Why a parsed result.json cannot be used, or None if it can."""
    if not isinstance(record, dict):
        return f"holds a {type(record).__name__}, not a record"
    for field in (*RECORD_FIELDS, *required):
        if field not in record:
            return f"has no {field!r} entry"
    weights = record["weights"]
    if not (isinstance(weights, dict)
            and isinstance(weights.get("sha256"), str)
            and (weights.get("kept") is False and weights.get("file") is None
                 or isinstance(weights.get("file"), str)
                 and "/" not in weights["file"])):
        return "has no valid 'weights' entry"
    if not isinstance(record["key"], str):
        return "has no valid 'key'"
    if not isinstance(record["config"], dict):
        return "has no valid 'config'"
    if "history" in required and not (
            isinstance(record["history"], list)
            and all(isinstance(row, dict) for row in record["history"])):
        return "has no valid 'history'"
    if "test" in required and not isinstance(record["test"], dict):
        return "has no valid 'test' metrics"
    return None


def checkpoint_problem(payload, key: str) -> str | None:
    """Why a loaded checkpoint cannot be resumed from, or None."""
    if not isinstance(payload, dict):
        return f"holds a {type(payload).__name__}, not a checkpoint"
    missing = [f for f in CHECKPOINT_FIELDS if f not in payload]
    if missing:
        return f"has no {', '.join(missing)}"
    if payload["key"] != key:
        return "belongs to another config, code or data (stale)"
    if not (isinstance(payload["model"], dict)
            and all(isinstance(v, torch.Tensor)
                    for v in payload["model"].values())):
        return "has no valid model state"
    opt = payload["opt"]
    if not (isinstance(opt, dict) and "state" in opt
            and "param_groups" in opt):
        return "has no valid optimizer state"
    if not isinstance(payload["sched"], dict):
        return "has no valid schedule state"
    for rng in ("gen", "rng"):
        t = payload[rng]
        if not (isinstance(t, torch.Tensor) and t.dtype == torch.uint8):
            return f"has no valid random state {rng!r}"
    history = payload["history"]
    if not (isinstance(history, list)
            and all(isinstance(r, dict) and r.get("epoch") == i
                    for i, r in enumerate(history, 1))):
        return "has no valid history"
    return None


class Store:
    """The results folder. Runs are addressed by name, validated by key
    and by the SHA-256 of their weights."""

    def __init__(self, root=None, warn=None):
        self.root = results_root(root)
        # one-line notices (an ignored checkpoint); stderr by default
        self.warn = warn or (lambda line: print(line, file=sys.stderr))
        self._sha_cache: dict[tuple, str] = {}

    def folder(self, name: str) -> Path:
        return self.root / name

    def check_writable(self, name: str | None = None) -> None:
        """Raise a one-line error unless results (and the run's folder,
        where it exists) can be written. Called before any training, so
        a bad path costs seconds, not an epoch."""
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
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".tmp-")
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise AecoreError(f"results folder {folder} is not "
                                  f"writable ({exc.strerror or exc}); "
                                  "choose another with --results or "
                                  f"${ENV_RESULTS}") from None

    def _parse(self, name: str) -> tuple[bool, object]:
        """(exists, parsed result.json); parsed is UNREADABLE when the
        file exists but cannot be read as JSON."""
        path = self.folder(name) / "result.json"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return False, None
        except (OSError, UnicodeDecodeError):
            return True, UNREADABLE
        try:
            return True, json.loads(text)
        except ValueError:
            return True, UNREADABLE

    def read(self, name: str) -> dict | None:
        """The stored record if result.json holds one, else None."""
        record = self._parse(name)[1]
        return record if isinstance(record, dict) else None

    def _sha256(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        tag = (str(path), st.st_size, st.st_mtime_ns)
        if tag not in self._sha_cache:
            try:
                self._sha_cache[tag] = hashlib.sha256(
                    path.read_bytes()).hexdigest()
            except OSError:
                return None
        return self._sha_cache[tag]

    def diagnose(self, name: str, key: str,
                 required=()) -> tuple[str, str]:
        """(status, reason): status is 'valid', 'missing', 'stale' or
        'damaged'; the reason says what is wrong, for messages."""
        exists, record = self._parse(name)
        where = self.folder(name) / "result.json"
        if not exists:
            return "missing", f"no {where}"
        problem = ("is not readable JSON" if record is UNREADABLE
                   else record_problem(record, required))
        if problem:
            return "damaged", f"{where} {problem}"
        if record["key"] != key:
            return "stale", (f"{where} was made by another config, code "
                             "or data")
        if record["weights"].get("kept") is False:
            return "valid", ""     # by design: only the record was kept
        weights = self.folder(name) / record["weights"]["file"]
        sha = self._sha256(weights)
        if sha is None:
            return "damaged", f"{weights} is missing or unreadable"
        if sha != record["weights"]["sha256"]:
            return "damaged", (f"{weights} does not match the SHA-256 in "
                               "result.json")
        return "valid", ""

    def status(self, name: str, key: str, required=()) -> str:
        """'valid', 'missing', 'stale' or 'damaged'."""
        return self.diagnose(name, key, required)[0]

    def load(self, name: str, key: str, required=()) -> dict | None:
        """The record when valid (leftovers of interrupted writes are
        removed then), else None."""
        if self.status(name, key, required) != "valid":
            return None
        record = self.read(name)
        self.tidy(name, keep=record["weights"]["file"] or "")
        return record

    def tidy(self, name: str, keep: str | None = None) -> None:
        """Remove what interrupted writes leave: temporary files, and,
        given the weights file a valid record names (`keep`), any other
        weights file and the finished run's checkpoint."""
        folder = self.folder(name)
        if not folder.is_dir():
            return
        junk = list(folder.glob(".tmp-*"))
        if keep is not None:
            junk += [p for p in folder.glob("weights-*.pt")
                     if p.name != keep]
            junk.append(folder / "checkpoint.pt")
        for path in junk:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass

    def check_free(self, name: str, config: dict) -> None:
        """Refuse to let a run overwrite the result of another config
        that happens to share its folder name."""
        record = self.read(name)
        if (record is not None
                and isinstance(record.get("config"), dict)
                and record["config"] != config):
            diff = ", ".join(
                f"{k} {record['config'].get(k)!r} there, {v!r} here"
                for k, v in config.items()
                if record["config"].get(k) != v)
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
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != record["weights"]["sha256"]:
            raise AecoreError(f"{path}: weights do not match result.json "
                              "(damaged); delete the folder and retrain")
        return torch.load(io.BytesIO(payload), map_location=map_location,
                          weights_only=True)

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
        buf = io.BytesIO()
        torch.save(payload, buf)
        body = buf.getvalue()
        sha = hashlib.sha256(body).hexdigest().encode()
        _atomic_write_bytes(self.folder(name) / "checkpoint.pt",
                            CHECKPOINT_MAGIC + sha + b"\n" + body)

    def load_checkpoint(self, name: str, key: str) -> dict | None:
        """The checkpoint to resume from, or None. All or nothing: a
        checkpoint that fails its checksum or lacks anything needed is
        reported in one line and ignored, so the run starts afresh
        exactly as if it had never existed. Leftover temporary files of
        interrupted writes are removed first."""
        self.tidy(name)
        path = self.folder(name) / "checkpoint.pt"
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.warn(f"aecore: ignoring {path}: {exc.strerror or exc}")
            return None
        head = len(CHECKPOINT_MAGIC)
        body = blob[head + 65:]
        if (not blob.startswith(CHECKPOINT_MAGIC)
                or blob[head + 64:head + 65] != b"\n"
                or hashlib.sha256(body).hexdigest().encode()
                != blob[head:head + 64]):
            self.warn(f"aecore: ignoring {path}: damaged (checksum "
                      "mismatch); starting this run from epoch 1")
            return None
        try:
            payload = torch.load(io.BytesIO(body), map_location="cpu",
                                 weights_only=True)
        except Exception as exc:   # unpickling errors of every kind
            self.warn(f"aecore: ignoring {path}: unreadable "
                      f"({type(exc).__name__}); starting from epoch 1")
            return None
        problem = checkpoint_problem(payload, key)
        if problem:
            self.warn(f"aecore: ignoring {path}: it {problem}; starting "
                      "this run from epoch 1")
            return None
        return payload
