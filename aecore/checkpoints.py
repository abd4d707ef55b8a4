"""The checkpoint format: a header line, the SHA-256 of the payload,
then the payload (`torch.save` bytes of model, optimiser, schedule and
random states, and the history so far)."""

from __future__ import annotations

import hashlib
import io

import torch

# Checkpoints: a header line, the payload's SHA-256, then torch.save bytes.
CHECKPOINT_MAGIC = b"aecore-checkpoint-1\n"
CHECKPOINT_FIELDS = ("key", "model", "opt", "sched", "gen", "rng", "history")
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




def encode(payload: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    sha = hashlib.sha256(body).hexdigest().encode()
    return CHECKPOINT_MAGIC + sha + b"\n" + body


def decode(blob: bytes, key: str) -> tuple[dict | None, str | None]:
    """(payload, None), or (None, why it cannot be resumed from)."""
    head = len(CHECKPOINT_MAGIC)
    body = blob[head + 65:]
    if (not blob.startswith(CHECKPOINT_MAGIC)
            or blob[head + 64:head + 65] != b"\n"
            or hashlib.sha256(body).hexdigest().encode()
            != blob[head:head + 64]):
        return None, "is damaged (checksum mismatch)"
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu",
                             weights_only=True)
    except Exception as exc:   # unpickling errors of every kind
        return None, f"is unreadable ({type(exc).__name__})"
    problem = checkpoint_problem(payload, key)
    return (None, problem) if problem else (payload, None)
