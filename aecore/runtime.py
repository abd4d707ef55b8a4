"""Where and how a run executes: the device, the environment a record
notes, and the one-line progress report of an epoch. Nothing here
changes a number, so this module is outside the results key."""

from __future__ import annotations

import io
import os
import platform
import sys

import torch

from .errors import ConfigError


def pick_device(device=None) -> torch.device:
    """CUDA, then Apple's MPS, then the CPU, unless one is named."""
    if device not in (None, "auto"):
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"bad device {device!r}: {exc}") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_problem(text: str) -> str | None:
    """Why `text` names no device this machine can train on, or None."""
    here = ["cpu"]
    if torch.cuda.is_available():
        here.append(f"cuda (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if torch.backends.mps.is_available():
        here.append("mps")
    here = "devices here: " + ", ".join(here) + ", or auto"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        return f"not a device: {text!r}; {here}"
    missing = {"cuda": (torch.cuda.is_available(), "CUDA is not available "
                        "on this machine (no NVIDIA GPU or driver, or a "
                        "CPU-only PyTorch)"),
               "mps": (torch.backends.mps.is_available(), "Apple's MPS is "
                       "not available on this machine")}
    if dev.type == "cpu":
        return None
    if dev.type not in missing:
        return f"{text!r} is not a device aecore can train on; {here}"
    ok, why = missing[dev.type]
    if not ok:
        return f"{text!r}: {why}; {here}"
    if (dev.type == "cuda" and dev.index is not None
            and dev.index >= torch.cuda.device_count()):
        return f"{text!r}: no such GPU; {here}"
    return None


def environment(device, cfg) -> dict:
    """What a record notes about the machine that trained it."""
    from .results import code_version
    return {"torch": torch.__version__, "python": sys.version.split()[0],
            "device": str(device), "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "precision": cfg.precision,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "code_version": code_version()}


def busy_cores(seconds=0.25) -> float:
    """How many cores other processes keep busy now: the non-idle share
    of all CPU time over `seconds` (Linux `/proc/stat`), in cores; 0
    where it cannot be read."""
    import time

    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]     # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    if total1 <= total0:
        return 0.0
    busy = 1 - (idle1 - idle0) / (total1 - total0)
    return busy * (os.cpu_count() or 1)


def threads_for_load(cores: int | None = None) -> int:
    """Threads for one run: every core that no other process is using.
    A multi-threaded step waits for its slowest thread, so a thread that
    shares its core with a busy process slows the whole run many times
    over; a run on the free cores slows only in proportion."""
    cores = cores or torch.get_num_threads()
    return max(1, min(cores, cores - round(busy_cores())))


def set_threads(option) -> None:
    """`--threads`: a number, or "auto" (`threads_for_load`)."""
    torch.set_num_threads(threads_for_load() if option == "auto"
                          else option)


def torch_note(record: dict) -> str:
    """A note when a record was made with another torch version."""
    made = (record.get("environment") or {}).get("torch")
    if made and made != torch.__version__:
        return f"  (made with torch {made}; this is {torch.__version__})"
    return ""


def format_row(name, row, epochs) -> str:
    """One epoch of a run's history as a log line."""
    line = (f"{name} epoch {row['epoch']}/{epochs} {row['seconds']:.1f}s "
            f"+ eval {row['eval_seconds']:.1f}s "
            f"loss {row['running_loss']:.4f} | val mse {row['val_mse']:.5f} "
            f"psnr {row['val_psnr']:.2f} pixel {row['val_pixel_acc']:.3f}")
    if "val_recog_acc" in row:
        line += f" recog {row['val_recog_acc']:.3f}"
    return line


class SafeStream(io.TextIOBase):
    """A standard stream that survives its reader going away (`... |
    head -1`): after a broken pipe, output goes nowhere and the work goes
    on, so a closed stdout never stops training or loses a result."""

    def __init__(self, stream):
        self.stream, self.broken = stream, False

    def writable(self):
        return True

    def isatty(self):
        try:
            return not self.broken and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def write(self, text):
        if not self.broken:
            try:
                self.stream.write(text)
            except (BrokenPipeError, OSError, ValueError):
                self._detach()
        return len(text)

    def flush(self):
        if not self.broken:
            try:
                self.stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._detach()

    def _detach(self):
        self.broken = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())   # quiet exit-time flush
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass


def safe_streams() -> None:
    """Make stdout and stderr safe to write to: a closed one (`>&-`)
    becomes a sink, a broken pipe is survived."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            stream = open(os.devnull, "w")
        if not isinstance(stream, SafeStream):
            setattr(sys, name, SafeStream(stream))


def log(line: str) -> None:
    print(line, flush=True)


def progress_wanted() -> bool:
    """A progress bar in a terminal, none in logs or with no stderr."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):
        return False
