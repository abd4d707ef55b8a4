"""The key of a stored result: a hash of what can change its numbers.

A run's key covers its resolved config (by value), the code of the
modules that compute numbers (their syntax trees, so comments and
docstrings do not count), the data files' fingerprint, and the key and
weights of the reference classifier behind its recognition accuracy.
Everything else (storage, formatting, the command line, device choice)
is outside it: editing that code never invalidates a result.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

# The modules whose code can change a run's numbers: data reading, the
# models, the metrics and the training loop. Everything else a run
# touches enters its key by value or stays out of it, as listed below
# (tests/test_train.py checks the list against the import graph).
NUMERIC_MODULES = ("data", "models", "metrics", "train")
OUTSIDE_THE_KEY = {
    "config": "enters the key by value (the resolved config)",
    "classifier": "enters the key by value (its own key and weights)",
    "results": "stores and checks results",
    "keys": "computes the key itself",
    "checkpoints": "the checkpoint file format",
    "runtime": "device choice, environment notes, log lines",
    "files": "where data and results live; checks of the data files",
    "errors": "exception classes",
}


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
def code_version(modules: tuple[str, ...] = NUMERIC_MODULES,
                 root: Path | None = None) -> str:
    """Hash of the modules' syntax trees (docstrings and comments
    excluded); `root` is aecore's folder (this one by default)."""
    h = hashlib.sha256()
    here = root or Path(__file__).resolve().parent
    for name in modules:
        tree = _strip_docstrings(ast.parse((here / f"{name}.py").read_text()))
        h.update(ast.dump(tree).encode())
    return h.hexdigest()[:16]


def make_key(config: dict, data_fingerprint: str,
             modules: tuple[str, ...] = NUMERIC_MODULES) -> str:
    """The key of a result: config, code of `modules`, and data."""
    blob = json.dumps({"config": config, "code": code_version(modules),
                       "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_key(cfg, data_fingerprint: str, classifier: dict | None) -> str:
    """A run's key: its config, the numeric code, the data, and the key
    and weights of the reference classifier (`classifier`, its record;
    None when there is no valid one) behind its recognition accuracy."""
    ref = None if classifier is None else {
        "key": classifier["key"], "sha256": classifier["weights"]["sha256"]}
    return make_key({**cfg.key_dict(), "classifier": ref}, data_fingerprint)


