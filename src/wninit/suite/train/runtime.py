"""Where and how a run executes: its device, its seeds and random streams, its thread count, the record
of its environment. Everything here is scoped: a run leaves the caller's torch threads and global RNG as
it found them.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import platform
import subprocess
from pathlib import Path

import torch

from wninit.errors import UserError

__all__ = ["resolve_device", "derived_seed", "num_threads", "rng_scope", "run_scope", "set_seed", "sum_dtype", "code_version",
           "cpu_model", "kernel_isa", "env"]


def resolve_device(name: str) -> torch.device:
    """`"auto"` picks cuda > mps > cpu; a device this machine lacks is a `UserError`."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise UserError(f"device {name!r} is not available on this machine; use device 'cpu' or 'auto'")
    return torch.device(name)


def derived_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed per purpose ("data", "init", "peer"), so data order and init never share
    a stream."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{purpose}".encode()).digest()[:8], "little") >> 1


@contextlib.contextmanager
def num_threads(threads: int | None):
    """Run the block with `threads` torch threads (None: unchanged), restoring the count after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device_streams(device: torch.device) -> tuple[str | None, list]:
    """The accelerator module name and device list whose global RNG a run on `device` may use."""
    if device.type == "cuda":
        return "cuda", [device.index if device.index is not None else torch.cuda.current_device()]
    if device.type == "mps":
        return "mps", ["mps"]
    return None, []


@contextlib.contextmanager
def rng_scope(device: torch.device):
    """Run the block on the global CPU stream (and `device`'s, on an accelerator) and give the caller
    its streams back after, as they were: a run reseeds them (`set_seed`) without a trace."""
    kind, devices = _device_streams(device)
    with torch.random.fork_rng(devices=devices, device_type=kind):
        yield


@contextlib.contextmanager
def run_scope(threads: int | None, device: torch.device, portable: bool = False):
    """The scope of one run, single or stacked: `threads` torch threads (`num_threads`), its own
    global random streams (`rng_scope`) and its kernel choices (portable mode:
    `wninit.suite.train.portable.kernel_scope`), the caller's all given back when it ends."""
    from wninit.suite.train import portable as pin

    pin.check(portable, device)
    with num_threads(threads), rng_scope(device), pin.kernel_scope(portable):
        yield


def set_seed(seed: int, device: torch.device) -> None:
    """Seed the global streams a run on `device` draws from: the reference's `set_seed` (docs/method.md §6.1).

    Only the CPU stream and `device`'s, those `rng_scope` restores: `torch.manual_seed` would
    also reseed every other accelerator.
    """
    kind, devices = _device_streams(device)
    torch.default_generator.manual_seed(seed)
    if kind == "cuda":
        torch.cuda.default_generators[devices[0]].manual_seed(seed)
    elif kind == "mps":
        torch.mps.manual_seed(seed)


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype losses are summed in on `device`: float64, or float32 on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _checkout_version(package: Path) -> dict:
    """The commit and dirty flag of the git checkout holding the package directory `package`."""
    # the package's own files must be tracked: a wheel installed inside some other repository is not a checkout
    if _git(["ls-files", "--error-unmatch", "--", "__init__.py"], package) is None:
        return {"commit": None, "dirty": None}
    commit = _git(["rev-parse", "HEAD"], package)
    status = _git(["status", "--porcelain", "--", "."], package)
    return {"commit": commit.strip() if commit else None, "dirty": None if status is None else status.strip() != ""}


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """`{"commit": sha, "dirty": bool}` of the git checkout this package is imported from; both None when
    it is not imported from one (an installed wheel) or git is missing. Computed once per process.

    `dirty` is True when the package's own files differ from the commit (modified, staged or untracked
    files under `src/wninit`): then the commit alone does not say which code made a result.
    """
    return _checkout_version(Path(__file__).resolve().parents[2])


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo` on Linux, the platform's word elsewhere): rounding in float32
    kernels depends on it through the instruction set they use (docs/reproducibility.md)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def kernel_isa() -> str:
    """The instruction set torch's CPU kernels dispatch to in this process (`AVX2`, `AVX512`, `DEFAULT`...)."""
    return torch.backends.cpu.get_cpu_capability()


def env(device: torch.device, seed: int, **extra) -> dict:
    """The record of where a run ran and which code ran it (stored with its result), plus `extra`: the
    machine is the CPU model and the instruction set the kernels used, and the GPU on a GPU."""
    from wninit import __version__
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"wninit": __version__, **code_version(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device), "seed": seed,
            "threads": torch.get_num_threads(), "cpu": cpu_model(), "isa": kernel_isa(), "gpu": gpu, **extra}
