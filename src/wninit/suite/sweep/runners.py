"""Where runs execute: a local process pool (default), Ray tasks or SLURM job arrays (`.slurm`). All
take groups of configs and hand back outcome dicts; the driver (`wninit.suite.sweep.driver`) claims, renews
and writes.

A group is one config, or several that train together as one batched model (`--batch-runs`).
`wait` returns `(handle, outcomes)` pairs, where `outcomes` is a list of dicts (one per config,
status completed|diverged|failed) or a `Lost` when the process running the group died.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import os
from dataclasses import dataclass

from wninit.errors import UserError
from wninit.suite.sweep.worker import init_worker, run_group

__all__ = ["LocalPool", "RayPool", "Lost", "make_pool", "default_workers"]


_DIED = "its worker process died (killed, or out of memory)"


@dataclass
class Lost:
    """The worker running a group died (killed, out of memory): its runs go back to pending."""
    reason: str


def default_workers() -> int:
    """min(2, CPUs): the 2-core CI machine's size, and a safe default on a shared laptop."""
    return max(1, min(2, os.cpu_count() or 1))


# Groups one generation of worker processes runs (per worker) before it is replaced by fresh processes: a
# process that trained many runs keeps what they left behind (allocator fragmentation, torch's caches), so a
# long sweep's memory would only grow. A fresh process costs one torch import (~2 s), 1/32 of the runs.
RECYCLE_AFTER = 32


class LocalPool:
    """A pool of `workers` spawned processes, replaced by fresh ones every `RECYCLE_AFTER` groups per
    worker.

    With more than one worker each sets `torch.set_num_threads(1)` (one thread per worker is
    the fastest use of the cores for small models); a single worker keeps torch's default threads.
    Spawned, not forked: forking a process whose torch already started its thread pool can hang.
    Recycled by generations, not with `max_tasks_per_child` (Python 3.11+ only, and it can deadlock the
    executor when a worker exits at its limit, CPython gh-115634): new groups go to a new executor while the
    old one finishes its groups and exits.
    """

    def __init__(self, workers: int | None = None, execution: dict | None = None):
        self.workers = workers or default_workers()
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        self.capacity = self.workers
        self.execution = execution  # execution fields applied to every run (worker._config)
        self._threads = 1 if self.workers > 1 else None
        self._pool = None
        self._submitted = 0  # groups given to the current generation
        self._retired: dict = {}  # earlier generations finishing their last groups: executor -> its processes
        self._task = run_group
        self._futures: dict[cf.Future, cf.ProcessPoolExecutor] = {}  # each group's generation

    def _ensure(self):
        if self._pool is not None and self._submitted >= RECYCLE_AFTER * self.workers:
            self._retire()
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                initializer=init_worker, initargs=(self._threads, os.getpid()))
            self._submitted = 0
        return self._pool

    def _retire(self) -> None:
        """Send no more groups to the current processes: they finish the ones they hold, then exit."""
        # shutdown() forgets its processes: keep them, to kill them if their generation breaks or we stop
        self._retired[self._pool] = list((self._pool._processes or {}).values())
        self._pool.shutdown(wait=False)
        self._pool = None

    def submit(self, cfgs) -> cf.Future:
        args = (self._task, [c.to_dict() for c in cfgs], self.execution, None)
        pool = self._ensure()
        try:
            fut = pool.submit(*args)
        except cf.process.BrokenProcessPool:
            # a worker died since the last wait: this generation takes nothing more; its groups come back
            # as lost from `wait`, and this one goes to fresh processes
            self._drop(pool)
            pool = self._ensure()
            fut = pool.submit(*args)
        self._submitted += 1
        self._futures[fut] = pool
        return fut

    def wait(self, timeout: float) -> list[tuple[object, object]]:
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out, broken = [], set()
        for fut in done:
            pool = self._futures.pop(fut)
            outcome = self._outcome(fut)
            if isinstance(outcome, Lost) and outcome.reason == _DIED:
                broken.add(pool)
            out.append((fut, outcome))
        # a dead worker breaks its whole executor: the other groups of that generation are lost too (their
        # runs go back to pending); other generations, and the next groups, run on
        for pool in broken:
            for fut in [f for f, p in self._futures.items() if p is pool]:
                self._futures.pop(fut)
                out.append((fut, self._outcome(fut) if fut.done() else Lost(_DIED)))
            self._drop(pool)
        return out

    @staticmethod
    def _outcome(fut: cf.Future):
        try:
            return fut.result(timeout=0)
        except cf.process.BrokenProcessPool:
            return Lost(_DIED)
        except (cf.CancelledError, cf.TimeoutError):
            return Lost(_DIED)
        except Exception as exc:  # pickling and other pool-level errors: the group failed to run
            return Lost(f"the pool could not run it ({type(exc).__name__}: {exc})")

    def _drop(self, pool=None) -> None:
        """Kill the processes of one executor generation (`pool`), or of every generation."""
        pools = [pool] if pool is not None else [self._pool, *self._retired]
        for p in pools:
            if p is None:
                continue
            procs = self._retired.pop(p, None) or list((getattr(p, "_processes", None) or {}).values())
            for proc in procs:
                if proc.is_alive():
                    proc.kill()
            for proc in procs:
                proc.join(timeout=5)
            p.shutdown(wait=False, cancel_futures=True)
        if pool is None or pool is self._pool:
            self._pool = None

    def stop(self) -> None:
        """Kill the workers now (a Ctrl-C): their runs are released by the driver."""
        self._drop()
        self._futures.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for procs in self._retired.values():
            for proc in procs:
                proc.join()
        self._retired = {}


class RayPool:
    """The same groups as Ray remote tasks (`--backend ray`), with `num_cpus`/`num_gpus` resources.

    `gpus_per_run` may be fractional (0.25 packs four small runs on one GPU). A task whose worker dies
    is retried by Ray `max_retries` times; after that the driver counts the run as lost. Connects to
    `address` (a running cluster), or reuses the Ray instance this process already started, or starts a
    local one.
    """

    def __init__(self, workers: int | None = None, execution: dict | None = None, address: str | None = None,
                 cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, max_retries: int = 3):
        try:
            import ray
        except ImportError:
            raise UserError("the ray backend needs Ray: pip install 'wninit[ray]' (or use --backend local)") from None
        if cpus_per_run <= 0 or gpus_per_run < 0:
            raise UserError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0, got {cpus_per_run} and {gpus_per_run}")
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as exc:
                raise UserError(f"cannot reach the Ray cluster at {address!r} ({exc}); check --address") from None
        self.execution = dict(execution or {})
        if gpus_per_run > 0:
            self.execution.setdefault("device", "cuda")
        self._threads = max(1, int(cpus_per_run))
        self._remote = ray.remote(run_group).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                                     max_retries=max_retries, retry_exceptions=False)
        self.capacity = workers or self._slots(cpus_per_run, gpus_per_run)
        self._refs: dict[object, object] = {}

    def _slots(self, cpus: float, gpus: float) -> int:
        res = self._ray.cluster_resources()
        slots = res.get("CPU", 1) / cpus
        if gpus > 0:
            if res.get("GPU", 0) == 0:
                raise UserError(f"--gpus-per-run {gpus} asks for GPUs but the Ray cluster has none; use 0")
            slots = min(slots, res["GPU"] / gpus)
        return max(1, math.floor(slots + 1e-9))

    def submit(self, cfgs):
        ref = self._remote.remote([c.to_dict() for c in cfgs], self.execution, self._threads)
        self._refs[ref] = cfgs
        return ref

    def wait(self, timeout: float) -> list[tuple[object, object]]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            self._refs.pop(ref)
            try:
                out.append((ref, self._ray.get(ref, timeout=60)))
            except Exception as exc:  # WorkerCrashedError after max_retries, node loss, ...
                out.append((ref, Lost(f"its Ray worker was lost ({type(exc).__name__})")))
        return out

    def stop(self) -> None:
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished or gone
                pass
        self._refs.clear()
        self.close()

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()


def make_pool(backend: str, *, workers=None, execution=None, address=None, cpus_per_run=1.0, gpus_per_run=0.0,
              slurm: dict | None = None):
    """The pool of `backend`; `slurm` holds `wninit.suite.sweep.slurm.SlurmPool`'s own arguments."""
    if slurm is not None and backend != "slurm":
        raise UserError("--partition, --time, --array-parallelism and --slurm-* are for --backend slurm; "
                        "drop them or add --backend slurm")
    if backend == "local":
        if address is not None or gpus_per_run:
            raise UserError("--address and --gpus-per-run are for --backend ray (--gpus-per-run also slurm); "
                            "drop them or choose that backend")
        return LocalPool(workers, execution)
    if backend == "ray":
        return RayPool(workers, execution, address, cpus_per_run, gpus_per_run)
    if backend == "slurm":
        from wninit.suite.sweep.slurm import SlurmPool

        if address is not None:
            raise UserError("--address is for --backend ray; drop it")
        if not slurm or not slurm.get("folder"):
            raise UserError("--backend slurm needs a log folder for submitit: pass --slurm-logs DIR")
        return SlurmPool(workers, execution, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, **slurm)
    raise UserError(f"unknown backend {backend!r}: choose local, ray or slurm")
