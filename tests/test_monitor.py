"""train/monitor.py: what a run shows while it trains (progress bar, TensorBoard) never changes its result; the
TensorBoard log holds every number of every epoch row, and a missing tensorboard package is said, not silent."""
import sys
import types

import pytest

from wninit.suite.train import RunConfig, fit

TINY = RunConfig(dataset="digits", depth=2, width=16, epochs=2, lr=0.02, momentum=0.9, batch_size=64, threads=1)


class _Writer:
    """A stand-in for torch's SummaryWriter that keeps what it is given."""
    logged: list = []
    closed = 0

    def __init__(self, log_dir):
        self.log_dir = log_dir

    def add_scalar(self, key, value, step):
        _Writer.logged.append((key, value, step))

    def close(self):
        _Writer.closed += 1


def test_tensorboard_logs_every_row_and_the_bar_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=_Writer))
    _Writer.logged, _Writer.closed = [], 0
    shown = fit(TINY, out_dir=tmp_path, progress=True, tensorboard=True)
    assert shown.metrics() == fit(TINY).metrics()
    expected = [(key, value, row["epoch"]) for row in shown.epochs for key, value in row.items()
                if key != "epoch" and value is not None]
    assert _Writer.logged == expected and len(expected) == 2 * 5 and _Writer.closed == 1


def test_tensorboard_without_its_package_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.warns(UserWarning, match="needs the tensorboard package"):
        result = fit(TINY.replace(epochs=1), out_dir=tmp_path, tensorboard=True)
    assert result.status == "completed" and not (tmp_path / "tb").exists()
