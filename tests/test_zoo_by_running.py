"""Every zoo model, the re-implementations and transformers' weight-normed models, initialized with one call and
an example input (docs/method.md §3.9, §3.10): every WN layer its forward calls is placed (none at the default),
the output has no NaN, and every stage's forward per-position norm ratio is within [0.8, 1.25] of its target on
that input. docs/zoo.md is the same measurement as a table (tests/zoo/table.py).
"""
import warnings

import pytest
import torch

import wninit
from wninit.structure.record import _flat_tensors, record
from wninit.structure.trace import discover
from zoo import ALL_ZOO as ZOO
from zoo.measure import stage_ratios

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
BAND = (0.8, 1.25)


def _check(model, x, band=BAND):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = wninit.initialize(model, "proposed", example_inputs=x, generator=torch.Generator().manual_seed(0))
    uncalled = " ".join(str(w.message) for w in caught if "does not call them" in str(w.message))
    defaults = [r.name for r in records if r.source == "default"]
    assert all(name in uncalled for name in defaults), defaults  # only layers the forward never calls
    out = record(model, x).output
    assert all(torch.isfinite(t).all() for t in _flat_tensors(out) if t.is_floating_point())
    for stage in stage_ratios(model, discover(model, example_inputs=x), x):
        assert band[0] <= stage.relative <= band[1], stage
    return records


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_with_an_example_input(name):
    build, shape = ZOO[name]
    torch.manual_seed(0)
    records = _check(build(), torch.randn(shape, generator=torch.Generator().manual_seed(1)))
    assert all(r.source == "discovered" for r in records)


def _hf_names():
    try:
        from zoo.hf import HF_ZOO
    except ImportError:
        return []
    return sorted(HF_ZOO)


@pytest.mark.parametrize("name", _hf_names())
def test_transformers_model_with_an_example_input(name):
    pytest.importorskip("transformers")
    from zoo.hf import HF_ZOO

    model, x = HF_ZOO[name]()
    _check(model, x)


def test_transformers_zoo_is_collected():
    """The transformers rows must not vanish silently: with the test extra installed they are all there, one per
    model folder of transformers whose code applies weight norm (but the one named in tests/zoo/hf.py)."""
    tf = pytest.importorskip("transformers")
    from pathlib import Path

    from zoo.hf import NOT_BUILT

    folders = {p.parent.name for p in (Path(tf.__file__).parent / "models").glob("*/modeling_*.py")
               if "weight_norm" in p.read_text()}
    missing = [f for f in folders - set(NOT_BUILT) if not any(n.startswith(f"hf_{f}") for n in _hf_names())]
    assert len(folders) >= 20 and not missing, missing
