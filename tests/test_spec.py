"""Experiment specs: every spec of experiments/ expands at both profiles; the paper profiles add up to more
than the paper's 2,500 runs (docs/method.md §6.3); the format's resolution rules; bad input is one sentence naming
the key and the file, exit 2 from the CLI."""
import re
from pathlib import Path

import pytest

from wninit.suite.cli import main
from wninit.errors import UserError
from wninit.suite.sweep.spec import PROFILES_REQUIRED, expand, load_spec

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SPECS = sorted(EXPERIMENTS.glob("*.toml"))
NAMES = ["fig2_mlp_depth", "fig2_mlp_hparams", "fig2_cnn_depth", "fig3_depth_10k", "fig3_lr_warmup",
         "table1_wn_vs_bn", "table2_hessian", "peers_depth", "beyond_cnn_plateau",
         "rl_minatar"]
EMBEDDED = ("mnist5k", "digits", "synthetic")
# PyTorch-default WN is not in Fig. 2's legend (docs/method.md §7.2): the MLP specs run it beyond the quick profile
NOT_IN_QUICK = {"fig2_mlp_depth": {("pytorch-default", "wn")}, "fig2_mlp_hparams": {("pytorch-default", "wn")}}


def test_one_spec_per_figure_and_table():
    assert sorted(p.stem for p in SPECS) == sorted(NAMES)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_expands_at_both_profiles(path):
    quick = load_spec(path, "quick")
    paper = load_spec(path, "paper")
    assert quick.name == paper.name == path.stem
    assert quick.runs and paper.runs
    assert len({c.run_id for c in quick.runs}) == len(quick.runs)  # distinct runs
    if path.stem == "rl_minatar":  # a game, not data: the paper profile is longer, with the same runs
        assert {c.task for c in quick.runs} == {"rl"} and {c.dataset for c in quick.runs} == {"minatar-breakout"}
        assert min(c.env_steps for c in paper.runs) > max(c.env_steps for c in quick.runs)
        assert {(c.scheme, c.norm) for c in quick.runs} == {(c.scheme, c.norm) for c in paper.runs}
        return
    # quick runs on embedded data on the CPU; paper runs on the paper's data and is larger
    assert {c.dataset for c in quick.runs} <= set(EMBEDDED)
    assert {c.dataset for c in paper.runs} <= {"mnist", "cifar10", "cifar100"}
    assert len(paper.runs) > len(quick.runs)
    # the paper's comparisons are kept: the same inits (and normalizations) at both profiles, but where a quick
    # profile leaves out an init that is not in the paper's figure (to keep `wninit reproduce` in its budget)
    assert {(c.scheme, c.norm) for c in quick.runs} == {(c.scheme, c.norm) for c in paper.runs} - NOT_IN_QUICK.get(path.stem, set())


def test_paper_profiles_exceed_the_papers_2500_runs(capsys):
    assert main(["sweep", *map(str, SPECS), "--profile", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    total, distinct = map(int, re.search(r"total: (\d+) runs \((\d+) distinct\)", out).groups())
    assert distinct > 2500 and total >= distinct
    # the dry run shows what varies, e.g. the depths of Fig. 2
    assert re.search(r"depth\s+6\s+2, 5, 10, 20, 100, 200", out)


def test_fig3_right_is_the_papers_800_runs():
    exp = load_spec(EXPERIMENTS / "fig3_lr_warmup.toml", "paper")
    assert len(exp.runs) == 4 * 5 * 2 * 20  # docs/method.md §6.3
    assert exp.varies["lr"] == [0.001, 0.005, 0.01, 0.05, 0.1]
    assert {(c.arch, c.depth, c.k, c.epochs) for c in exp.runs} == {("wrn", 40, 10, 3)}


def test_quick_mlp_depth_keeps_the_comparison():
    exp = load_spec(EXPERIMENTS / "fig2_mlp_depth.toml", "quick")
    assert max(exp.varies["depth"]) >= 50
    assert set(exp.varies["scheme"]) == {"proposed", "datadep"}  # the poster's legend; claim 5 compares these two
    assert "pytorch-default" in load_spec(EXPERIMENTS / "fig2_mlp_depth.toml", "medium").varies["scheme"]


DOC = {
    "experiment": {"name": "t"},
    "base": {"dataset": "digits", "depth": 2, "width": 8, "epochs": 1},
    "grid": {"seed": [1, 2], "lr": [0.1, 0.01]},
    "series": [{"name": "a", "scheme": "proposed"},
               {"name": "b", "scheme": "datadep", "grid": {"lr": [0.5]}}],
    "profiles": {"quick": {"base": {"epochs": 2}, "grid": {"seed": [3]},
                           "series": {"b": {"grid": {"lr": [0.2, 0.3]}}}},
                 "paper": {}},
}


def test_resolution_order_profile_then_series():
    exp = expand(DOC, "quick", "doc.toml")
    a = [c for c in exp.runs if c.scheme == "proposed"]
    b = [c for c in exp.runs if c.scheme == "datadep"]
    assert {(c.seed, c.lr, c.epochs) for c in a} == {(3, 0.1, 2), (3, 0.01, 2)}  # profile grid/base replace
    assert {(c.seed, c.lr) for c in b} == {(3, 0.2), (3, 0.3)}  # profile's series override replaces the series grid
    assert exp.series == {"a": 2, "b": 2}
    paper = expand(DOC, "paper", "doc.toml")
    assert len(paper.runs) == 2 * 2 + 2 * 1 and {c.epochs for c in paper.runs} == {1}


def test_bundle_axis_sets_fields_together():
    doc = {"base": {"dataset": "digits", "epochs": 1},
           "grid": {"net": [{"arch": "mlp", "depth": 3}, {"arch": "wrn", "depth": 10, "k": 1}]},
           "profiles": {"quick": {}}}
    exp = expand(doc, "quick", "b.toml")
    assert [(c.arch, c.depth, c.k) for c in exp.runs] == [("mlp", 3, 1), ("wrn", 10, 1)]


def test_disabled_series_and_duplicates_are_dropped():
    doc = {"base": {"dataset": "digits"}, "grid": {"seed": [1]},
           "series": [{"name": "x", "lr": 0.1}, {"name": "y", "lr": 0.1}, {"name": "z", "lr": 0.2}],
           "profiles": {"quick": {"series": {"z": {"enabled": False}}}}}
    exp = expand(doc, "quick", "d.toml")
    assert len(exp.runs) == 1 and exp.series == {"x": 1, "y": 0}


BAD = [
    ('[experimnt]\nname = "x"\n[profiles.quick]\n', "unknown top-level key 'experimnt'"),
    ('[base]\ndepht = 3\n[profiles.quick]\n', "unknown field 'depht'"),
    ('[grid]\nlr = [0.1, -1.0]\n[profiles.quick]\n', "RunConfig.lr must be > 0"),
    ('[grid]\ndepth = 5\n[profiles.quick]\n', "grid key 'depth'"),
    ('[base]\nlr = 0.1\n[profiles.paper]\n', "profile 'quick' is not in"),
    ('[base]\nscheme = "proposed"\nnorm = "bn"\n[profiles.quick]\n', "norm='wn'"),
    ('[profiles.quick.base]\nmomentun = 0.9\n', "unknown field 'momentun'"),
    ('[profiles.quick]\nbsae = {}\n', "unknown key of [profiles.quick] 'bsae'"),
    ('[[series]]\nname = "a"\nshceme = "x"\n[profiles.quick]\n', "unknown field of series 'a' 'shceme'"),
    ('[profiles.quick.series.nope]\nlr = 1.0\n', "names no series"),
    ('[base\nlr = 1\n', "is not valid TOML"),
]


@pytest.mark.parametrize("text,needle", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_spec_is_one_sentence_naming_key_and_file(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_spec(path, "quick")
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "\n" not in msg
    assert main(["sweep", str(path), "--profile", "quick", "--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(path) in lines[0] and "Traceback" not in lines[0]


def test_missing_spec_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_spec(tmp_path / "nope.toml", "quick")


def test_every_spec_has_both_profiles_and_documents_not_found_choices():
    for path in SPECS:
        text = path.read_text()
        for profile in PROFILES_REQUIRED:
            assert f"[profiles.{profile}" in text, (path, profile)
        assert "NOT FOUND" in text, path  # the choices where the spec is silent are written down
