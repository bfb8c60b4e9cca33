"""`--backend slurm`: the sweep's groups as SLURM job arrays, through submitit.

The driver (`wninit.suite.sweep.driver`) stays where it runs (a login node, in tmux): it claims runs in the
store, holds and renews their leases, and writes every result, exactly as with the local pool or Ray. This
pool only changes where a group trains: the groups the driver hands it between two waits become one job
array (one task per run, or per stacked group with `--batch-runs`), at most `array_parallelism` of
them running at once. A task returns its outcomes through submitit's result file; it never touches the
store.

Preemption or a time limit: SLURM signals the task, submitit calls `SlurmTask.checkpoint` and
requeues the same task under the same job id, so the driver keeps waiting on it. A single run trains with
an epoch checkpoint in the log folder (`runs/<run id>/`), so a requeued task, or the next attempt after
a lost job, continues from its last finished epoch. NOTE: a stacked group keeps no checkpoint
(`wninit.suite.sweep.ensemble.fit_ensemble` writes nothing to disk) and restarts whole.

`executor="local"` runs the same arrays on this machine through submitit's local executor: the code
path of a cluster, used by the tests.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import warnings
from pathlib import Path

from wninit.errors import UserError
from wninit.suite.sweep.runners import Lost
from wninit.suite.sweep.worker import run_group, run_one

__all__ = ["SlurmPool", "SlurmTask", "EXECUTORS", "DEFAULT_TIME_MIN", "DEFAULT_PARALLELISM"]

EXECUTORS = ("slurm", "local")
DEFAULT_TIME_MIN = 60  # per task; a task past it is requeued (submitit's timeout countdown) with its checkpoint
DEFAULT_PARALLELISM = 16  # array tasks running at once (SLURM's %K)
DEFAULT_CAPACITY = 256  # groups the driver keeps queued or running at once (SLURM's MaxArraySize is ~1000)
POLL_S = 0.05


class SlurmTask:
    """What one array task runs: a single run (with an epoch checkpoint in `run_dir`) or a stacked group.

    Checkpointable in submitit's sense: on preemption or timeout submitit pickles
    `checkpoint`'s submission and requeues it, so the task starts again with the same arguments and
    [`wninit.suite.train.fit`][wninit.suite.train.single_run.fit] resumes from `run_dir`.
    """

    def __call__(self, cfg_dicts: list[dict], execution: dict | None, threads: int | None,
                 run_dir: str | None) -> list[dict]:
        if len(cfg_dicts) == 1:
            return [run_one(cfg_dicts[0], execution, threads, out_dir=run_dir)]
        return run_group(cfg_dicts, execution, threads)

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


class _Handle:
    """The driver's key for one group: hashable by identity, valid before its array is submitted."""
    __slots__ = ("cfgs",)

    def __init__(self, cfgs):
        self.cfgs = cfgs


class SlurmPool:
    """The driver's pool for `--backend slurm`: `submit` queues a group, `wait` submits the queued
    groups as one job array and returns the groups whose task ended.

    Args:
        workers: groups queued or running at once (default 256); the array's own limit is `array_parallelism`.
        execution: execution fields applied to every run (device, channels_last, compile).
        folder: submitit's log folder (job scripts, logs, result pickles, run checkpoints); must be on a file
            system the compute nodes share.
        executor: `"slurm"` (sbatch) or `"local"` (submitit's local executor: this machine).
        partition: the SLURM partition; checked against `sinfo` when it is there.
        gpus_per_run: whole GPUs per task (`--gres gpu:N`); runs then default to device cuda.
        time_min: each task's time limit in minutes.
        array_parallelism: array tasks running at once.
        cpus_per_run: CPUs per task, also the task's torch threads.
        options: further sbatch options by submitit's name (`qos`, `account`, `constraint`, `mem`...).
    """

    def __init__(self, workers: int | None = None, execution: dict | None = None, *, folder, executor: str = "slurm",
                 partition: str | None = None, gpus_per_run: float = 0, time_min: int | None = None,
                 array_parallelism: int | None = None, cpus_per_run: float = 1.0, options: dict | None = None):
        submitit = _import_submitit()
        _check_numbers(gpus_per_run, time_min, array_parallelism, cpus_per_run)
        if executor not in EXECUTORS:
            raise UserError(f"unknown submitit executor {executor!r}: choose {' or '.join(EXECUTORS)}")
        if executor == "slurm" and shutil.which("sbatch") is None:
            raise UserError("there is no SLURM on this machine (sbatch not found): run the sweep on the cluster's "
                            "login node, or pass --slurm-executor local to run the array here")
        _check_partition(partition, executor)
        self.folder = _writable(folder)
        self.execution = dict(execution or {})
        if gpus_per_run:
            self.execution.setdefault("device", "cuda")
        self._threads = max(1, int(cpus_per_run))
        try:
            self._executor = submitit.AutoExecutor(folder=self.folder, cluster=executor)
        except RuntimeError as exc:  # submitit's own checks of the cluster (srun missing, ...)
            raise UserError(f"submitit cannot use SLURM here ({exc}); run the sweep on the cluster's login node") from None
        _set_parameters(self._executor, dict(
            name="wninit", timeout_min=int(time_min or DEFAULT_TIME_MIN), cpus_per_task=self._threads,
            gpus_per_node=int(gpus_per_run) or None, slurm_partition=partition,
            slurm_array_parallelism=array_parallelism or DEFAULT_PARALLELISM), options or {})
        self.capacity = workers or DEFAULT_CAPACITY
        self.parallelism = min(self.capacity, array_parallelism or DEFAULT_PARALLELISM)
        self._task = SlurmTask()
        self._queued: list[_Handle] = []
        self._jobs: dict[_Handle, object] = {}

    def submit(self, cfgs) -> _Handle:
        handle = _Handle(cfgs)
        self._queued.append(handle)
        return handle

    def _run_dir(self, cfgs) -> str | None:
        return str(self.folder / "runs" / cfgs[0].run_id) if len(cfgs) == 1 else None

    def _flush(self) -> None:
        """Submit the queued groups as one job array (one sbatch call)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        try:
            with self._executor.batch():
                jobs = [self._executor.submit(self._task, [c.to_dict() for c in h.cfgs], self.execution,
                                              self._threads, self._run_dir(h.cfgs)) for h in queued]
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:  # sbatch refused the array
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise UserError(f"SLURM refused the job array ({first}); check --partition, --time and "
                            f"--slurm-option against the cluster's limits") from None
        self._jobs.update(zip(queued, jobs))

    def wait(self, timeout: float) -> list[tuple[object, object]]:
        self._flush()
        deadline = time.monotonic() + timeout
        while self._jobs:
            done = [h for h, job in self._jobs.items() if job.done()]
            if done or time.monotonic() >= deadline:
                return [(h, self._outcome(h)) for h in done]
            time.sleep(POLL_S)
        return []

    def _outcome(self, handle: _Handle):
        job = self._jobs.pop(handle)
        try:
            outcomes = job.result()
        except Exception as exc:  # cancelled, killed (memory, node), out of requeues: no result file
            text = str(exc).strip().splitlines()
            return Lost(f"its SLURM job {job.job_id} ended without a result ({text[0] if text else type(exc).__name__})")
        _forget(job, self._run_dir(handle.cfgs))
        return outcomes

    def stop(self) -> None:
        """Cancel every queued or running task (a Ctrl-C of the driver): the driver releases their runs."""
        for job in self._jobs.values():
            try:
                job.cancel(check=False)
            except Exception as exc:  # scancel failed: the task still ends, its result is not read
                warnings.warn(f"could not cancel SLURM job {job.job_id} ({exc}); scancel it by hand")
        self._jobs.clear()
        self._queued.clear()

    def close(self) -> None:
        self._queued.clear()


def _forget(job, run_dir: str | None) -> None:
    """The result is in hand: drop its checkpoint and pickles (the logs stay, for reading)."""
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    for path in (job.paths.result_pickle, job.paths.submitted_pickle):
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a shared file system hiccup: the file only takes space
            pass


def _import_submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("the slurm backend needs submitit: pip install 'wninit[slurm]' "
                        "(or use --backend local)") from None
    return submitit


def _check_numbers(gpus_per_run, time_min, array_parallelism, cpus_per_run) -> None:
    if gpus_per_run < 0 or gpus_per_run != int(gpus_per_run):
        raise UserError(f"--gpus-per-run must be a whole number of GPUs for SLURM, got {gpus_per_run}")
    if time_min is not None and time_min < 1:
        raise UserError(f"--time must be at least 1 minute, got {time_min}")
    if array_parallelism is not None and array_parallelism < 1:
        raise UserError(f"--array-parallelism must be at least 1, got {array_parallelism}")
    if cpus_per_run < 1 or cpus_per_run != int(cpus_per_run):
        raise UserError(f"--cpus-per-run must be a whole number of CPUs (at least 1) for SLURM, got {cpus_per_run}")


def _check_partition(partition: str | None, executor: str) -> None:
    """A partition the cluster lacks is named now, before any run is claimed (`sinfo` lists them)."""
    if partition is None:
        return
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        if executor == "local":
            warnings.warn(f"--partition {partition} is ignored by the local executor (no SLURM here)")
        return
    try:
        listed = subprocess.run([sinfo, "-h", "-o", "%R"], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        warnings.warn(f"could not list the partitions with sinfo ({exc}); sbatch will check --partition {partition}")
        return
    names = sorted(set(listed.stdout.split()))
    if partition not in names:
        raise UserError(f"partition {partition!r} is not one of this cluster's ({', '.join(names) or 'none listed'}); "
                        f"pick one of them with --partition")


def _writable(folder) -> Path:
    path = Path(folder).absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".wninit-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write the submitit log folder {str(path)!r} ({exc.strerror or exc}); pass "
                        f"--slurm-logs DIR on a writable file system the compute nodes share") from None
    return path


def _set_parameters(executor, params: dict, options: dict) -> None:
    """The executor's parameters; `options` are sbatch options by submitit's name, checked by submitit."""
    params = {k: v for k, v in params.items() if v is not None}
    params.update({f"slurm_{k}": v for k, v in options.items()})
    try:
        executor.update_parameters(**params)
    except NameError as exc:  # submitit lists every valid option; name only the bad ones
        bad = sorted(k for k in options if f"'{k}'" in str(exc))
        raise UserError(f"unknown SLURM option {', '.join(bad) or str(exc).splitlines()[0]} in --slurm-option; "
                        f"use submitit's names of sbatch options (qos, account, constraint, mem, ...)") from None
