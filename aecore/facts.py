"""The numbers of the chapters that only print stored results (the
preface and the conclusions), read without importing torch.

`load(name)` returns `report.<name>_facts(Book())`, a JSON-able dict,
from `results/cache/facts-<name>.json` when the stamp stored with it
still matches, and computes and stores it otherwise. The stamp is the
SHA-256 of everything the value can depend on:

* aecore's source (every module, so the `*_facts` functions too);
* every file in the results folder except `cache/` (records, weights,
  plan and benchmark files);
* the four data files.

Checking it reads about 75 MB and takes a fraction of a second, against
two to three seconds for `import torch` and loading the data in a chapter
kernel. Any change to code, results or data computes the value again
through the Book, which validates the stored runs (and trains what is
missing) as every other chapter does: a stale value is never served.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

from . import files

PACKAGE = Path(__file__).resolve().parent


def stamp(results=None, data=None) -> str | None:
    """SHA-256 of aecore's source, the results folder (but its cache) and
    the data files; None when a data file is missing (then the Book
    reports it)."""
    h = hashlib.sha256()

    def add(label: str, path: Path):
        h.update(f"{label}\0{path.stat().st_size}\0".encode())
        h.update(path.read_bytes())

    for path in sorted(PACKAGE.glob("*.py")):
        add(f"aecore/{path.name}", path)
    root = files.results_root(results)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (path.is_file() and rel.parts[0] != "cache"
                and not path.name.startswith(".")):   # locks, temp files
            add(f"results/{rel.as_posix()}", path)
    raw = files.raw_folder(files.resolve_root(data)[0])
    for name in files.FILES:
        if not (raw / name).is_file():
            return None
        add(f"data/{name}", raw / name)
    return h.hexdigest()


def load(name: str, results=None, data=None) -> dict:
    """The facts `name` ("preface", "conclusions"): stored ones while the
    stamp matches, else `report.<name>_facts(Book())`, stored for next
    time."""
    path = files.results_root(results) / "cache" / f"facts-{name}.json"
    now = stamp(results, data)
    try:
        entry = json.loads(path.read_text())
        if now is not None and entry["stamp"] == now:
            return entry["value"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError,
            RecursionError):
        pass
    report = importlib.import_module(".report", __package__)
    value = getattr(report, f"{name}_facts")(report.Book(data, results))
    value = json.loads(json.dumps(value))   # as it reads back next time
    from .results import atomic_save_json
    atomic_save_json(path, {"stamp": stamp(results, data), "value": value})
    return value
