"""Writes tests/data/store_v1.db with the store code of schema_version 1 (wninit at commit e63abc2).

Run it with that code on the path (``PYTHONPATH=<checkout of e63abc2>/src python tests/data/make_store_v1.py``):
the file pins that a store written before the run ids carried a schema version still opens, its ids mapped.
Three runs of experiment "old"/"quick" (one finished with two epoch rows), plus one stale row whose id is not
its config's v1 id (a Gaussian run of a unit-norm scheme stored before those runs changed meaning).
"""
import hashlib
import json
import sqlite3
import sys
from pathlib import Path

from wninit.suite.sweep import leases
from wninit.suite.sweep.store import METRIC_KEYS, Store
from wninit.suite.train import RunConfig

out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("store_v1.db"))
out.unlink(missing_ok=True)
cfgs = [RunConfig(dataset="digits", depth=2, width=8, epochs=2, seed=s) for s in (1, 2)]
cfgs.append(RunConfig(dataset="cifar10", arch="resnet", depth=8, norm="bn", scheme="he", bn_reference=True, epochs=3))
with Store(out) as store:
    store.add("old", "quick", cfgs)
    got = leases.claim(store, "here:1:1", 1, experiment="old")
    metrics = dict.fromkeys(METRIC_KEYS)
    metrics.update(test_acc=0.5, best_val_acc=0.5, best_epoch=1, epochs_done=2)
    leases.finish(store, {"run_id": got[0].run_id, "status": "completed", "metrics": metrics, "wall_s": 1.5,
                          "epochs": [{"epoch": e, "train_loss": 1.0, "val_loss": 1.1, "train_acc": 0.5,
                                      "val_acc": 0.5, "lr": 0.01} for e in range(2)],
                          "env": {"wninit": "0.1.0", "torch": "2.x", "device": "cpu", "threads": 1},
                          "host": "here"})
    stale = RunConfig(dataset="digits", depth=2, width=8, epochs=2, direction="gaussian").resolved()
    fields = stale.result_fields()
    fields.pop("gaussian_gain")  # the id such a run had before gaussian_gain entered the hash
    old_id = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    with store.transaction() as conn:
        conn.execute("INSERT INTO runs(id, config, status, seed, created_at) VALUES (?, ?, 'pending', 1, 'then')",
                     (old_id, stale.to_json()))
        conn.execute("INSERT INTO memberships(experiment, profile, run_id) VALUES ('old', 'quick', ?)", (old_id,))
conn = sqlite3.connect(out)
conn.execute("PRAGMA journal_mode=DELETE")
conn.execute("PRAGMA page_size=1024")
conn.execute("VACUUM")
conn.close()
print({c.run_id: c.to_dict()["seed"] for c in cfgs}, old_id, out.stat().st_size)
