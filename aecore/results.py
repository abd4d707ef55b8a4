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
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from .errors import AecoreError

ENV_RESULTS = "AECORE_RESULTS"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Modules whose code decides what a training run produces.
TRAINING_MODULES = ("data", "models", "metrics", "train", "classifier")


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


def atomic_save_json(path: Path, obj) -> None:
    _atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def atomic_torch_save(path: Path, obj) -> str:
    """Save with torch.save atomically; return the payload's SHA-256."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    _atomic_write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


class Store:
    """The results folder. Runs are addressed by name, validated by key."""

    def __init__(self, root=None):
        self.root = results_root(root)

    def folder(self, name: str) -> Path:
        return self.root / name

    def read(self, name: str) -> dict | None:
        """The stored record, or None when absent or unreadable."""
        path = self.folder(name) / "result.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def status(self, name: str, key: str) -> str:
        """'valid', 'missing', 'stale' or 'damaged'."""
        record = self.read(name)
        if record is None:
            return "missing"
        if record.get("key") != key:
            return "stale"
        weights = self.folder(name) / record["weights"]["file"]
        if not weights.is_file():
            return "damaged"
        return "valid"

    def load(self, name: str, key: str) -> dict | None:
        return self.read(name) if self.status(name, key) == "valid" else None

    def weights(self, name: str, record: dict, map_location="cpu"):
        path = self.folder(name) / record["weights"]["file"]
        payload = path.read_bytes()
        if hashlib.sha256(payload).hexdigest() != record["weights"]["sha256"]:
            raise AecoreError(f"{path}: weights do not match result.json "
                              "(damaged); delete the folder and retrain")
        return torch.load(io.BytesIO(payload), map_location=map_location,
                          weights_only=True)

    def save(self, name: str, record: dict, state_dict) -> dict:
        """Write weights under a fresh name, then swap result.json."""
        folder = self.folder(name)
        buf = io.BytesIO()
        torch.save(state_dict, buf)
        sha = hashlib.sha256(buf.getvalue()).hexdigest()
        file = f"weights-{sha[:12]}.pt"
        _atomic_write_bytes(folder / file, buf.getvalue())
        record = {**record, "weights": {"file": file, "sha256": sha}}
        atomic_save_json(folder / "result.json", record)
        for old in folder.glob("weights-*.pt"):   # the previous result's
            if old.name != file:
                old.unlink(missing_ok=True)
        (folder / "checkpoint.pt").unlink(missing_ok=True)
        return record

    def save_checkpoint(self, name: str, payload: dict) -> None:
        atomic_torch_save(self.folder(name) / "checkpoint.pt", payload)

    def load_checkpoint(self, name: str, key: str) -> dict | None:
        path = self.folder(name) / "checkpoint.pt"
        if not path.is_file():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None
        return payload if payload.get("key") == key else None
