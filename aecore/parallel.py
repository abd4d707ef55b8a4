"""Runs trained side by side in worker processes (`runs.train_plan`).

Each worker trains one run at a time on its share of the CPU cores. The
workers never outlive the process that started them: on Linux the
kernel sends each a SIGTERM when it goes (however it goes, SIGKILL
included), and each checks its parent before taking the next run. A
SIGTERM to the parent stops them too. A killed run resumes from its last
completed epoch next time.
"""

from __future__ import annotations

import os
import signal
import time

_WORKER: dict = {}


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent exits."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):     # not Linux: the check below
        pass


def _start(data_root, results_root, device, threads, parent) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the
    # workers itself, so none prints a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from . import data as fmnist
    from .results import Store
    from .runtime import safe_streams
    _die_with_parent()
    if os.getppid() != parent:            # the parent went before prctl
        os._exit(1)
    safe_streams()
    torch.set_num_threads(threads)
    _WORKER.update(data=fmnist.load(data_root), store=Store(results_root),
                   device=device, parent=parent)


def _train(cfg, keep_weights) -> dict:
    from . import runs
    from .runtime import log
    if os.getppid() != _WORKER["parent"]:
        os._exit(1)
    tick = time.perf_counter()
    run = runs.load_or_train(cfg, _WORKER["data"], _WORKER["store"],
                             _WORKER["device"], log=log,
                             keep_weights=keep_weights)
    return {"now": time.perf_counter() - tick, "trained": True,
            "stored": run.record.get("wall_seconds")}


def train_parallel(todo, plan_name, costs, data, store, device, jobs,
                   threads, log) -> dict:
    """Train `todo` in `jobs` worker processes, longest first. A failed
    run stops the runs not yet started, while those in progress finish
    and are stored; Ctrl-C or SIGTERM stops them all at once (each
    resumes from its last completed epoch next time)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from . import plan
    order, _ = plan.schedule(costs, jobs)
    by_name = {c.name: c for c in todo}
    times = {}
    pool = ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(_root(data), str(store.root), str(device), threads,
                  os.getpid()))

    def stop_workers():
        # the pool keeps its processes in a private dict; terminating
        # them is the only way to stop a run in progress
        for process in list((getattr(pool, "_processes", None)
                             or {}).values()):
            process.terminate()

    def stop(signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        futures = {pool.submit(_train, by_name[n], plan.keeps_weights(
            by_name[n], plan_name)): n for n in order}
        for f in as_completed(futures):
            if f.exception() is not None:
                log(f"{futures[f]} failed; the runs in progress finish, "
                    "the others are not started")
                raise f.exception()          # `finally` shuts the pool
            times[futures[f]] = f.result()
            log(f"{futures[f]}: {times[futures[f]]['now']:.0f} s "
                f"({len(times)}/{len(todo)} trained)")
    except KeyboardInterrupt:                  # Ctrl-C or SIGTERM
        stop_workers()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=True, cancel_futures=True)
    return times


def _root(data) -> str:
    """The data root the workers load `data` from."""
    if data.root is None:
        raise ValueError("parallel training needs data read from files")
    return str(data.root)
