"""Shared settings of the fuzz tests: case count, hypothesis settings, the per-target report."""
import re

from hypothesis import HealthCheck, settings

CASES = 1000
SETTINGS = settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
DATASETS = ("mnist", "cifar10", "cifar100", "mnist5k", "digits", "synthetic")
ONE_SENTENCE = re.compile(r"\.\s+[A-Z]")  # a second sentence would start after ". "


def _report(target: str, counts: dict) -> None:
    total = sum(counts.values())
    print(f"\nfuzz {target}: {total} cases " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    assert total >= CASES, counts
