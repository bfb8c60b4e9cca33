"""Portable mode: a run's CPU kernels pinned to one instruction set, so that its result does not depend on the
x86 machine that made it (docs/reproducibility.md).

torch picks its float32 kernels by the CPU it finds: ATen's vectorized ops by the widest vector unit, MKL's
GEMM by the CPU model and vendor, oneDNN's convolutions by the ISA and the cache sizes. Each choice changes the
order of a sum, hence the last bits, and a deep network's training turns those bits into a different run. The
three libraries read their choice from the environment once, when they load, so the pin is a property of the
process: `ENV` must be set before torch is imported (the CLI starts itself again with it,
`rerun_pinned`; the sweep's spawned workers inherit it). Inside a run, `kernel_scope` then routes
convolutions to ATen's own im2col + GEMM (oneDNN and NNPACK pick their blocking by the machine) and asks for
deterministic algorithms.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import torch

from wninit.errors import UserError

__all__ = ["ENV", "ISA", "active", "check", "kernel_scope", "pinned_env", "rerun_pinned"]

ISA = "AVX2"  # every x86 machine the project runs on has it, AMD and Intel alike
# What each library reads when it loads. MKL runs its AVX2 reproducibility branch on Intel CPUs only, so GEMM
# takes the one branch it runs alike on every x86 vendor, COMPATIBLE; STRICT makes it independent of the data's
# alignment too (docs/reproducibility.md, "Portable mode").
ENV = {"ATEN_CPU_CAPABILITY": ISA.lower(), "MKL_CBWR": "COMPATIBLE,STRICT", "ONEDNN_MAX_CPU_ISA": ISA}


def pinned_env(environ: dict | None = None) -> dict:
    """`environ` (default: this process's) with `ENV` set."""
    return {**(os.environ if environ is None else environ), **ENV}


def active() -> bool:
    """Whether this process was started pinned: `ENV` in its environment and ATen dispatching to `ISA`."""
    return all(os.environ.get(k) == v for k, v in ENV.items()) and torch.backends.cpu.get_cpu_capability() == ISA


def _cpu_has_isa() -> bool:
    return bool(torch.cpu._is_avx2_supported())


def check(portable: bool, device: torch.device) -> None:
    """A run asking for portable mode runs only in a pinned process, and a run that does not only in an unpinned
    one, so that the `portable` a result is stored with says how it was made."""
    if portable and device.type != "cpu":
        raise UserError(f"portable mode pins CPU kernels, but this run is on {device.type}; run it with device 'cpu' "
                        "or without portable")
    if portable and not _cpu_has_isa():
        raise UserError(f"portable mode pins kernels to {ISA}, which this CPU lacks; run without portable")
    if portable and not active():
        raise UserError(f"this run is portable but this process's kernels are not pinned to {ISA}: run it through "
                        "the command line with --portable (or `wninit rerun`), or start Python with the environment "
                        f"{' '.join(f'{k}={v}' for k, v in ENV.items())}")
    if not portable and active():
        raise UserError(f"this process's kernels are pinned to {ISA} (portable mode) but the run is not portable; "
                        "set portable on the run, or run it in a process started without "
                        f"{', '.join(ENV)}")


@contextlib.contextmanager
def kernel_scope(portable: bool):
    """The run's kernel choices (portable: convolutions through ATen + MKL, deterministic algorithms), the
    caller's given back after."""
    if not portable:
        yield
        return
    mkldnn = torch.backends.mkldnn.enabled
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    nnpack = torch.backends.nnpack.set_flags(False)  # returns the caller's
    try:
        torch.backends.mkldnn.enabled = False
        torch.use_deterministic_algorithms(True)
        yield
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.backends.nnpack.set_flags(*nnpack)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def rerun_pinned(argv: list[str]) -> int:
    """Run `wninit ARGV` again in a child process started with `ENV`, and return its exit status. Ctrl-C
    reaches the child too (same process group): the parent waits while it stops and keeps its finished work."""
    if not _cpu_has_isa():
        raise UserError(f"portable mode pins kernels to {ISA}, which this CPU lacks; run without --portable")
    with subprocess.Popen([sys.executable, "-m", "wninit", *argv], env=pinned_env()) as child:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
