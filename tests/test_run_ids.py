"""Files written under the run ids of schema 1 (before ids carried a schema version) still name their run."""
import json

import pytest

from wninit.errors import UserError
from wninit.suite.train import RunConfig, fit
from wninit.suite.train.run_ids import legacy_run_id, same_run

CFG = RunConfig(dataset="digits", depth=2, width=8, epochs=1, batch_size=64)


def test_same_run_knows_a_config_by_its_current_and_its_schema_1_id():
    assert CFG.run_id != legacy_run_id(CFG)
    assert same_run(CFG.run_id, CFG) and same_run(legacy_run_id(CFG), CFG)
    assert not same_run(legacy_run_id(CFG.replace(seed=2)), CFG)


def test_a_run_directory_finished_under_its_schema_1_id_is_the_finished_run(tmp_path):
    first = fit(CFG, out_dir=tmp_path)
    stored = json.loads((tmp_path / "result.json").read_text())
    stored["run_id"] = legacy_run_id(CFG)  # the result.json an older wninit wrote for this run
    (tmp_path / "result.json").write_text(json.dumps(stored))
    again = fit(CFG, out_dir=tmp_path)
    # read back, not trained again (the same wall time), and named by its current id
    assert again.run_id == CFG.run_id and again.metrics() == first.metrics() and again.wall_s == first.wall_s
    stored["run_id"] = legacy_run_id(CFG.replace(seed=2))  # another run's old id is still another run
    (tmp_path / "result.json").write_text(json.dumps(stored))
    with pytest.raises(UserError, match=f"holds the result of run {stored['run_id']}, not of this config"):
        fit(CFG, out_dir=tmp_path)


def test_a_run_interrupted_under_its_schema_1_id_resumes_to_the_uninterrupted_result(tmp_path):
    import torch

    from wninit.suite.train.checkpoint import CHECKPOINT

    cfg = CFG.replace(epochs=2)
    whole = fit(cfg)
    fit(cfg.replace(epochs=1), out_dir=tmp_path)  # stands for a run stopped after its first epoch
    (tmp_path / "result.json").unlink()
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1
    # the checkpoint an older wninit wrote for this run: its schema-1 id, of the 2-epoch config
    torch.save({**state, "run_id": legacy_run_id(cfg)}, tmp_path / CHECKPOINT)
    resumed = fit(cfg, out_dir=tmp_path)
    assert resumed.run_id == cfg.run_id and resumed.metrics() == whole.metrics() and resumed.epochs == whole.epochs
    torch.save({**state, "run_id": legacy_run_id(cfg.replace(seed=2))}, tmp_path / CHECKPOINT)
    (tmp_path / "result.json").unlink()
    with pytest.raises(UserError, match="holds a checkpoint of run"):
        fit(cfg, out_dir=tmp_path)
