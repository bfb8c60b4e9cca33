"""wninit.explain and `wninit explain` / `wninit diagnose MODULE:FACTORY`: the table, the model untouched, bad input."""
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

import wninit
from wninit.suite.cli import main
from wninit.models import WideResNet

_USER_MODEL = '''
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as wn

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.c2 = wn(nn.Conv1d(c, c, 3, padding=1)), wn(nn.Conv1d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.c2(nn.functional.leaky_relu(self.c1(nn.functional.leaky_relu(x, 0.1)), 0.1))

def build():
    return nn.Sequential(wn(nn.Conv1d(4, 8, 7, padding=3)), *[Block(8) for _ in range(3)])

def broken():
    raise RuntimeError("no weights here")

NOT_A_MODEL = 3
def not_a_model():
    return 3
'''


@pytest.fixture
def user_module(tmp_path):
    path = tmp_path / "user_models.py"
    path.write_text(textwrap.dedent(_USER_MODEL))
    return path


def test_explain_leaves_the_model_and_the_global_rng_untouched():
    model = WideResNet(10, 1, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    table = wninit.explain(model, print_table=False)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    recs = table.by_name()
    assert recs["blocks.0.conv2"].gamma == 1.0 and recs["blocks.0.conv2"].source == "declared"
    assert "blocks.0.conv2" in str(table) and "3 declared" not in str(table)


def test_explain_cli_prints_discovered_rules(user_module, capsys):
    assert main(["explain", f"{user_module}:build", "--input-shape", "4,16"]) == 0
    out = capsys.readouterr().out
    assert "discovered" in out and "branch end: 1/(B_k*r), r=0.505" in out and "leaky_relu(0.1) follows" in out


@pytest.mark.parametrize("target, shape, match", [
    ("{path}:build", "5,16", ", 5, 16) ("),
    ("{path}:nope", "4,16", "has no function or class 'nope'"),
    ("{path}:broken", "4,16", "broken() raised RuntimeError: no weights here"),
    ("{path}:not_a_model", "4,16", "returned a int, not an nn.Module"),
    ("/nonexistent/models.py:build", "4,16", "there is no file"),
    ("no_such_module_xyz:build", "4,16", "could not import 'no_such_module_xyz'"),
    ("{path}", "4,16", "give your model as MODULE:FACTORY"),
])
@pytest.mark.parametrize("command", ["explain", "diagnose"])
def test_bad_user_model_input_is_one_sentence_and_exit_2(user_module, capsys, command, target, shape, match):
    assert main([command, target.format(path=user_module), "--input-shape", shape]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_diagnose_user_model_writes_table_and_signal_propagation_plot(user_module, tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", f"{user_module}:build", "--input-shape", "4,32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "forward" in printed and (out / "signal_propagation.png").stat().st_size > 10_000
    rows = [line.split(",") for line in (out / "propagation_proposed.csv").read_text().splitlines()]
    # named after the model's modules: the stem (Sequential index 0), then each block's sum, in data-flow order
    assert [r[1] for r in rows] == ["name", "0", "1", "2", "3"]


def test_diagnose_needs_a_model():
    assert main(["diagnose"]) == 2


def test_explain_and_diagnose_a_legacy_api_vocoder(tmp_path, capsys):
    """The legacy weight_norm caches weight as a non-leaf tensor, which deepcopy refuses: explain copies anyway and
    leaves the model's cache as it was; the CLI diagnoses the HiFi-GAN generator of the zoo."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from zoo import hifigan_generator

    model = hifigan_generator.build()
    cached = model.conv_pre.weight
    table = wninit.explain(model, print_table=False)
    assert model.conv_pre.weight is cached and cached.grad_fn is not None
    assert sum(r.kind == "ConvTranspose1d" for r in table) == 4 and {r.source for r in table} == {"discovered"}
    (tmp_path / "voc.py").write_text("import sys\nsys.path.insert(0, %r)\nfrom zoo.hifigan_generator import build\n"
                                     % str(Path(__file__).parent))
    assert main(["diagnose", f"{tmp_path / 'voc.py'}:build", "--input-shape", "80,8", "--batch", "2",
                 "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "signal_propagation.png").exists()


def _explained_models():
    """A WRN (roles declared), a user model traced for its roles (torch API), and a mixed one: legacy API,
    a ConvTranspose over its output channels, a grouped conv, and a Linear with more units than inputs."""
    namespace = {}
    exec(textwrap.dedent(_USER_MODEL), namespace)
    mixed = nn.Sequential(nn.Conv1d(4, 8, 3), nn.ReLU(), nn.Conv1d(8, 8, 3, groups=4), nn.ReLU(),
                          nn.ConvTranspose1d(8, 6, 4, stride=2), nn.Flatten(), nn.Linear(6 * 14, 3), nn.ReLU(),
                          nn.Linear(3, 12))
    wninit.weight_norm(mixed, "legacy")
    wninit.switch_api(mixed[4], "torch")
    mixed[4] = wninit.remove_weight_norm(mixed[4])
    wninit.weight_norm(mixed[4], "wninit", dim=1)
    return {"wrn": WideResNet(10, 1, 10), "user": namespace["build"](), "mixed": mixed}


class _Ops(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the name of every aten op run inside it."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", ["wrn", "user", "mixed"])
@pytest.mark.parametrize("scheme", ["proposed", "hanin", "proposed-backward", "pytorch-default"])
def test_explain_draws_no_direction_and_gives_initializes_records(name, scheme):
    model = _explained_models()[name]
    with _Ops() as ops:
        table = wninit.explain(model, scheme, print_table=False)
    drawing = [op for op in ops.names if any(w in op for w in ("normal", "uniform", "rand", "qr", "geqrf"))]
    assert drawing == []  # no draw, no QR
    records = wninit.initialize(model, scheme, generator=torch.Generator().manual_seed(0))
    assert len(table) == len(records)
    modules = dict(model.named_modules())
    for explained, done in zip(table, records):
        if scheme != "pytorch-default":
            assert explained == done  # every field, g bit for bit as stored
            continue
        assert explained == replace(done, g=explained.g)
        units = wninit.wn_g(modules[done.name]).numel()
        drawn = units > wninit.wn_v(modules[done.name]).numel() // units  # more units than entries: norms vary
        assert explained.g is None if drawn else explained.g == pytest.approx(done.g, abs=1e-6)


def _hifigan():
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from zoo import hifigan_generator

    return hifigan_generator.build()


def test_the_explain_table_fits_100_columns_and_every_g_follows_from_its_row(capsys):
    """On the zoo's HiFi-GAN (transposed, strided upsamplers; leaky ReLU and tanh; parallel residual stages):
    every printed line fits 100 columns, and every row's g is sqrt(gamma * c * fan_in / fan_out) of the numbers
    printed in that row, to the 4 significant digits printed."""
    wninit.explain(_hifigan())
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = lines[0].split()
    end = next(i for i, line in enumerate(lines) if line.startswith("("))
    rows = [dict(zip(header, line.split())) if len(line.split()) == len(header) else
            dict(zip([h for h in header if h != "k.b/B"], line.split())) for line in lines[2:end]]
    assert len(rows) == 78 and sum(r["kind"] == "ConvT1d" for r in rows) == 4
    for r in rows:
        fan_in, fan_out, c, gamma, g = (float(r[k]) for k in ("fan_in", "fan_out", "c", "gamma", "g"))
        assert g == pytest.approx((gamma * c * fan_in / fan_out) ** 0.5, rel=2e-3), r
    assert {r["c"] for r in rows if r["kind"] == "ConvT1d"} == {"4", "1"}  # stride 8 with 2x the inputs; stride 2
    legend = "\n".join(lines[end:])
    assert "R3 = branch end: 1/(B_k*r), r=0.505; outside the theory" in legend and "disc = discovered" in legend


def test_explain_wide_spells_out_every_rule(capsys):
    table = wninit.explain(_hifigan(), wide=True)
    out = capsys.readouterr().out
    assert "ConvTranspose1d" in out and "leaky_relu(0.1) follows: 1/E[phi(z)^2]" in out and "R1 =" not in out
    assert max(len(line) for line in out.splitlines()) > 100 and str(table) != table.render(wide=True)


def test_long_layer_names_give_way_in_the_middle():
    from wninit.init.explain import ExplainTable
    from wninit.init.schemes import LayerInit

    long = "encoder." + "very_long_module_name." * 5 + "conv"
    table = ExplainTable((LayerInit(long, "hidden", 64, 64, 2.0, 1.414, "Conv2d", "discovered", "relu follows"),), "proposed")
    first = str(table).splitlines()[2]
    assert len(first) <= 100 and first.startswith("encoder.") and ".." in first.split()[0]
    assert first.split()[0].endswith("conv")


def test_explain_cli_wide(user_module, capsys):
    assert main(["explain", f"{user_module}:build", "--input-shape", "4,16", "--wide"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert any("leaky_relu(0.1) follows: 1/E[phi(z)^2]" in row and "discovered" in row for row in rows)


def test_explain_plot_colours_each_layer_by_how_its_gamma_was_set(tmp_path, capsys):
    from wninit.diagnostics.plot import EXPLAIN_CATEGORIES, _category, plot_explain

    table = wninit.explain(_hifigan(), print_table=False)
    categories = [_category(r) for r in table]
    # HiFi-GAN's branch ends sit in parallel stages that share their input: outside the theory, the rest discovered
    assert categories.count("outside the theory") == 36 and categories.count("discovered") == 42
    assert set(categories) <= set(EXPLAIN_CATEGORIES)
    png = plot_explain(table, tmp_path / "explain.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000


def test_explain_cli_plot(user_module, tmp_path, capsys):
    assert main(["explain", f"{user_module}:build", "--input-shape", "4,16", "--plot", str(tmp_path / "e.png")]) == 0
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG" and "wrote" in capsys.readouterr().out
