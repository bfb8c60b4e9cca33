"""Trace by running (docs/method.md §3.9) and measured branch ends (§3.10): example_inputs= on any model that runs.

Each test asserts the claim itself: the recorded graph gives the fx roles where fx works, models fx cannot trace
are placed, an internal error keeps its traceback, a measured sum grows by exactly its share on the input, and
the path without an example input writes bit-identical g and v (digests pinned from the code before it).
"""
import math
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as torch_wn

import wninit
from wninit.errors import UserError
from wninit.structure.record import record
from wninit.structure.trace import TraceFailure, discover
from wninit.weightnorm.access import wn_g

pytestmark = pytest.mark.usefixtures("one_thread")


class Block(nn.Module):
    def __init__(self, c: int, untraceable: bool):
        super().__init__()
        self.c1, self.c2, self.untraceable = torch_wn(nn.Conv1d(c, c, 3, padding=1)), torch_wn(nn.Conv1d(c, c, 3, padding=1)), untraceable

    def forward(self, x):
        if self.untraceable and (len(x) == 0 or x.shape[-1] < 2):  # control flow on len and shapes: fx fails
            return x
        return x + self.c2(torch.relu(self.c1(x)))


class Net(nn.Module):
    """Four residual blocks; the untraceable twin also assigns into a tensor and returns a dict."""

    def __init__(self, untraceable: bool = True):
        super().__init__()
        self.untraceable = untraceable
        self.stem = torch_wn(nn.Conv1d(4, 8, 3, padding=1))
        self.blocks = nn.ModuleList(Block(8, untraceable) for _ in range(4))
        self.head = torch_wn(nn.Linear(8, 3))

    def forward(self, x, scale: float = 1.0):
        h = self.stem(x * scale)
        for b in self.blocks:
            h = b(h)
        out = self.head(h.mean(-1))
        if self.untraceable:
            out = out.clone()
            out[:, 0] = out[:, 0] * 1.0  # item assignment: fx's Proxy refuses it
            return {"logits": out}
        return out


def _roles(s):
    return {k: (r.kind, r.stage, r.block, r.stage_blocks, r.follow, r.branch_ratio) for k, r in s.roles.items()}


def test_untraceable_model_gets_the_roles_fx_gives_its_traceable_twin():
    x = torch.randn(2, 4, 32)
    with pytest.raises(TraceFailure):
        discover(Net())
    by_running = discover(Net(), example_inputs=x)
    assert by_running.traced_by == "by running"
    assert _roles(by_running) == _roles(discover(Net(untraceable=False)))
    assert by_running.rules == discover(Net(untraceable=False)).rules


@pytest.mark.parametrize("name", ["resnext", "mixer", "mbconv", "densenet"])
def test_by_running_gives_the_fx_roles_and_rules_on_traceable_zoo_models(name):
    from zoo import ALL_ZOO as ZOO

    build, shape = ZOO[name]
    model = build()
    fx_s, run_s = discover(model), discover(model, example_inputs=torch.randn(shape))
    assert _roles(run_s) == _roles(fx_s) and run_s.rules == fx_s.rules
    assert [(s.stage, s.block, s.stage_blocks, s.branch_end) for s in run_s.sums] == \
        [(s.stage, s.block, s.stage_blocks, s.branch_end) for s in fx_s.sums]


def test_example_inputs_as_tensor_tuple_or_dict_of_kwargs():
    x = torch.randn(2, 4, 16)
    expected = _roles(discover(Net(), example_inputs=x))
    assert _roles(discover(Net(), example_inputs=(x, 2.0))) == expected
    assert _roles(discover(Net(), example_inputs={"x": x, "scale": 2.0})) == expected
    with pytest.raises(UserError, match="example_inputs must be a tensor, a tuple"):
        discover(Net(), example_inputs=3.0)
    with pytest.raises(UserError, match="holds no tensor"):
        discover(Net(), example_inputs=(1, 2))


def test_a_model_that_rejects_the_example_input_is_told_in_one_sentence():
    with pytest.raises(UserError, match=r"Net rejected the example input of shape\(s\) \(2, 5, 16\)"):
        wninit.initialize(Net(), example_inputs=torch.randn(2, 5, 16))


def test_untraceable_without_example_input_asks_for_one_and_changes_nothing():
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UserError, match=r"torch.fx cannot trace Net .*pass example_inputs= a batch the model accepts"):
        wninit.initialize(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_declared_roles_need_no_trace_even_when_fx_fails():
    model = Net()
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            wninit.set_role(m, "hidden")
    assert {r.source for r in wninit.initialize(model)} == {"declared"}


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    import importlib

    rec, trace = (importlib.import_module(f"wninit.structure.{m}") for m in ("record", "trace"))

    def broken(module):
        raise ZeroDivisionError("a bug in wninit's own predicate")

    monkeypatch.setattr(trace, "is_registered", broken)
    with pytest.raises(ZeroDivisionError):  # before: a TraceFailure, then every layer at the default
        discover(Net(untraceable=False))
    monkeypatch.setattr(rec, "is_leaf", broken)
    with pytest.raises(ZeroDivisionError):  # not "the model rejected the input"
        discover(Net(), example_inputs=torch.randn(2, 4, 16))


def _left_behind(model: nn.Module) -> list[str]:
    """What a recording may have left on the model's modules: hooks, or a wrapped `forward` on an instance."""
    return [name for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or "forward" in m.__dict__]


def test_recording_restores_mode_grad_and_global_hooks():
    model = Net().train()
    hooks = (len(nn.modules.module._global_forward_hooks), len(nn.modules.module._global_forward_pre_hooks))
    record(model, torch.randn(2, 4, 16))
    assert all(m.training for m in model.modules()) and torch.is_grad_enabled()
    assert (len(nn.modules.module._global_forward_hooks), len(nn.modules.module._global_forward_pre_hooks)) == hooks
    assert _left_behind(model) == []


class _RaisesInLeaf(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.utils.parametrizations.weight_norm(nn.Linear(4, 4))

    def forward(self, x):
        return self.fc(x.view(-1))  # the leaf rejects the flattened input


def test_a_leaf_that_raises_leaves_no_mode_and_no_hook_behind():
    """The recorder's mode is off while a leaf runs: a leaf's error must not leave it off (or on) the stack."""
    model = _RaisesInLeaf()
    depth = torch._C._len_torch_function_stack()
    with pytest.raises(UserError, match="rejected the example input"):
        record(model, torch.randn(2, 3, 4))
    assert torch._C._len_torch_function_stack() == depth
    assert _left_behind(model) == []
    assert len(record(model, torch.randn(1, 4)).graph.nodes) > 2  # and it records again


class _CatchesALeafError(nn.Module):
    """Tries a layer, falls back when it rejects the input (as models probing an optional path do)."""

    def __init__(self):
        super().__init__()
        self.probe, self.fc = torch_wn(nn.Linear(3, 8)), torch_wn(nn.Linear(8, 8))

    def forward(self, x):
        try:
            x = self.probe(x)
        except RuntimeError:
            pass
        return x + self.fc(torch.relu(x))


def test_a_leaf_error_the_model_catches_does_not_stop_the_recording():
    """The leaf's error unwinds the recorder's state with it: what runs after is recorded (with hooks, the leaf
    that raised was never left, and nothing after it was written)."""
    model = _CatchesALeafError()
    graph = record(model, torch.randn(2, 8)).graph
    assert [n.target for n in graph.nodes if n.op == "call_module"] == ["fc"]
    assert len(discover(model, example_inputs=torch.randn(2, 8)).sums) == 1
    assert _left_behind(model) == []


def test_a_forward_patched_on_the_instance_is_recorded_and_kept():
    """A library that patches a layer's `forward` on the instance (offloading, adapters) keeps its patch, and the
    patched forward is what runs and is recorded as the layer."""
    model = _ModuleMadeInForward()
    calls = []
    original = model.fc.forward

    def patched(x):
        calls.append(x.shape)
        return original(x)

    model.fc.forward = patched
    graph = record(model, torch.randn(3, 8)).graph
    assert [n.target for n in graph.nodes if n.op == "call_module"] == ["fc", "fc"] and len(calls) == 2
    assert model.fc.__dict__["forward"] is patched


class _ModuleMadeInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.utils.parametrizations.weight_norm(nn.Linear(8, 8))

    def forward(self, x):
        return x + self.fc(nn.ReLU()(self.fc(x)))  # the ReLU is no module of the model


def test_a_module_made_inside_forward_keeps_the_dataflow():
    """Its torch calls are recorded like the forward's own (before: its output was a constant, which cut the
    branch off its stream and hid the residual sum)."""
    graph = record(_ModuleMadeInForward(), torch.randn(3, 8)).graph
    assert "_constant" not in str(graph)
    assert [n.target for n in graph.nodes if n.op == "call_module"] == ["fc", "fc"]
    assert discover(_ModuleMadeInForward(), example_inputs=torch.randn(3, 8)).sums


class LNBlock(nn.Module):
    """A branch the theory cannot predict: LayerNorm resets the scale inside it; ``alpha`` a branch scale."""

    def __init__(self, d: int, alpha: float | None):
        super().__init__()
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(d), torch_wn(nn.Linear(d, 2 * d)), torch_wn(nn.Linear(2 * d, d))
        self.alpha = nn.Parameter(torch.tensor(alpha)) if alpha is not None else None

    def forward(self, x):
        h = self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))
        return x + (self.alpha * h if self.alpha is not None else h)


def _sum_energies(model, s, x):
    """``(skip energy, sum energy)`` per residual sum on ``x``, from a recording."""
    keep = {r.node for r in s.sums} | {r.stream for r in s.sums}
    rec = record(model, x, keep=keep)
    return [(float(rec.values[r.stream].double().square().sum()), float(rec.values[r.node].double().square().sum()))
            for r in s.sums]


@pytest.mark.parametrize("alpha", [None, 0.5])
def test_measured_sums_grow_by_exactly_their_share_of_the_stream(alpha):
    torch.manual_seed(0)
    model = nn.Sequential(*[LNBlock(16, alpha) for _ in range(5)])
    x = torch.randn(4, 7, 16) * 3.0
    records = wninit.initialize(model, example_inputs=x, generator=torch.Generator().manual_seed(0))
    ends = [r for r in records if r.role == "block_out"]
    assert len(ends) == 5 and all(r.gain_from == "measured" and "outside the theory" in r.rule for r in ends)
    assert all(r.gain_from == "predicted" for r in records if r.role != "block_out")
    s = discover(model, example_inputs=x)
    share = (alpha or 1.0) ** 2 / 5
    for skip, total in _sum_energies(model, s, x):
        assert total / skip == pytest.approx(1 + share, rel=1e-5)
    assert all(math.isclose(float(wn_g(model.get_submodule(r.name)).mean()), r.g, rel_tol=1e-5) for r in ends)


class InPlaceBlock(LNBlock):
    """The sum written in place into the branch's output (`h += x`, transformers' ResNet layers)."""

    def forward(self, x):
        h = self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))
        h += x
        return h


def test_an_in_place_sum_is_measured_on_the_operand_before_the_sum():
    """The operand the correction rescales is the branch's output before the sum wrote into it (before: the
    sum itself, aliased, so the branch added a few percent of its stream instead of 1/B_k)."""
    torch.manual_seed(0)
    model, x = nn.Sequential(*[InPlaceBlock(16, None) for _ in range(4)]), torch.randn(4, 7, 16) * 3.0
    records = wninit.initialize(model, example_inputs=x, generator=torch.Generator().manual_seed(0))
    assert sum(r.gain_from == "measured" for r in records) == 4
    for skip, total in _sum_energies(model, discover(model, example_inputs=x), x):
        assert total / skip == pytest.approx(1 + 1 / 4, rel=1e-5)


class ReadsAnotherInput(nn.Module):
    """A branch that reads a second input besides its stream: UnivNet's location-variable convolution in small
    (its kernel and gate come from the spectrogram)."""

    def __init__(self):
        super().__init__()
        self.fc, self.cond, self.out = torch_wn(nn.Linear(8, 8)), torch_wn(nn.Linear(4, 8)), torch_wn(nn.Linear(8, 8))

    def forward(self, x, c):
        return self.out(x + torch.tanh(self.fc(x)) * torch.sigmoid(self.cond(c)))


@pytest.mark.parametrize("by_running", [False, True])
def test_a_branch_that_reads_another_input_is_named_outside_the_theory(by_running):
    from wninit.structure.trace import MIXED

    x = (torch.randn(2, 8), torch.randn(2, 4))
    rules = {r.name: r.rule for r in wninit.initialize(ReadsAnotherInput(), example_inputs=x if by_running else None)}
    assert rules["fc"].endswith(f"outside the theory: {MIXED}")
    assert "outside" not in rules["cond"] and "outside" not in rules["out"]


def test_univnets_location_variable_branches_are_named_outside_the_theory():
    pytest.importorskip("transformers")
    from zoo.hf import HF_ZOO

    from wninit.structure.trace import MIXED

    model, x = HF_ZOO["hf_univnet"]()
    rules = {r.name: r.rule for r in wninit.initialize(model, example_inputs=x)}
    lvc = [name for name in rules if ".resblocks." in name and name.endswith(".conv") and "kernel" not in name]
    assert len(lvc) == 4 and all(MIXED in rules[name] for name in lvc)


def test_a_zero_branch_scale_keeps_its_predicted_gain():  # ReZero: the authors' identity at init
    model = nn.Sequential(*[LNBlock(8, 0.0) for _ in range(3)])
    records = wninit.initialize(model, example_inputs=torch.randn(2, 5, 8))
    assert all(r.gain_from == "predicted" for r in records)


class SideOutputNet(nn.Module):
    """VITS's flows in small: stage 1's branches also write a side output (WaveNet's skip half) that the
    stream of stage 2 reads, so stage 2 sees the branch ends of stage 1 through two paths."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.d = d
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(2))
        self.fc1 = nn.ModuleList(torch_wn(nn.Linear(d, 2 * d)) for _ in range(2))
        self.fc2 = nn.ModuleList(torch_wn(nn.Linear(2 * d, 2 * d)) for _ in range(2))
        self.mid = torch_wn(nn.Linear(d, d))
        self.stage2 = nn.Sequential(*[LNBlock(d, None) for _ in range(3)])

    def forward(self, x):
        side = torch.zeros_like(x)
        for norm, fc1, fc2 in zip(self.norms, self.fc1, self.fc2):
            a = fc2(torch.nn.functional.gelu(fc1(norm(x))))
            x = x + a[..., :self.d]
            side = side + a[..., self.d:]
        return self.stage2(self.mid(x + side))


def test_a_branch_that_feeds_a_later_stream_is_measured_until_every_sum_is_exact():
    torch.manual_seed(0)
    model, x = SideOutputNet(), torch.randn(4, 7, 8)
    wninit.initialize(model, example_inputs=x, generator=torch.Generator().manual_seed(0))
    s = discover(model, example_inputs=x)
    assert [r.stage_blocks for r in s.sums] == [2, 2, 3, 3, 3]
    for (skip, total), r in zip(_sum_energies(model, s, x), s.sums):
        assert total / skip == pytest.approx(1 + 1 / r.stage_blocks, rel=1e-5), r.node


class NoisyBlocks(nn.Module):
    """Residual blocks fed a noise its forward draws (VITS's prior flows: `z = mu + noise * sigma`)."""

    def __init__(self, d: int = 8):
        super().__init__()
        self.blocks = nn.Sequential(*[LNBlock(d, None) for _ in range(3)])

    def forward(self, x):
        return self.blocks(x + torch.randn_like(x))


def test_a_forward_that_draws_noise_is_measured_on_one_draw_and_leaves_the_global_stream():
    model, x = NoisyBlocks(), torch.randn(2, 5, 8)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    wninit.initialize(model, example_inputs=x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream, untouched by the recordings
    s = discover(model, example_inputs=x)
    for skip, total in _sum_energies(model, s, x):  # the draw measured is the draw every recording sees
        assert total / skip == pytest.approx(1 + 1 / 3, rel=1e-5)


def test_multihead_attention_out_proj_is_a_branch_end():
    from zoo import ALL_ZOO as ZOO

    build, shape = ZOO["vit"]
    model = build()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = {r.name: r for r in wninit.initialize(model, example_inputs=torch.randn(shape))}
    assert records["blocks.0.attn.out_proj"].role == "block_out"
    assert "attention" in records["blocks.0.attn.out_proj"].rule
    assert all(r.source == "discovered" for r in records.values())


# Digests of every g and v under initialize(model, "proposed") without an example input, made by the code before
# trace-by-running (tests/_gv_digest.py): the paper's models and the fx-traceable zoo keep them bit for bit.
PINNED = {"mlp": "743d7dec4fb328e3", "cnn": "ebf636e7b2392390", "resnet": "df62b85399d5631d", "wrn": "d202dc91a6468f1d",
          "resnet50": "72c5669af7ee5321", "preact_resnet": "2e5d3e1b2a745ad1", "hifigan_generator": "4a9332460522da4b",
          "wavenet": "367684fb35de4a4f", "impala_cnn": "1a334e12c59c9fc0", "resnext": "3211b7e9c29e49cf",
          "mobilenet_v1": "ae13bae2addbd6db", "mixer": "353e6dc9bc03a953"}


@pytest.mark.slow
def test_without_an_example_input_g_and_v_are_bit_identical_to_before():
    from _gv_digest import FX_ZOO, digests, paper_models
    from zoo import ALL_ZOO as ZOO

    assert digests(paper_models()) == {k: PINNED[k] for k in ("mlp", "cnn", "resnet", "wrn")}
    assert digests({k: ZOO[k][0] for k in FX_ZOO}) == {k: PINNED[k] for k in FX_ZOO}


def test_explain_says_which_gains_were_measured_and_leaves_the_model_alone():
    model = nn.Sequential(*[LNBlock(8, None) for _ in range(3)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    table = wninit.explain(model, example_inputs=torch.randn(2, 5, 8), print_table=False)
    lines = table.render(wide=True).splitlines()
    assert lines[0].split()[-1] == "gain"
    assert any(line.split()[0] == "0.fc2" and line.split()[-1] == "meas" for line in str(table).splitlines())
    gains = {r.name: r.gain_from for r in table}
    assert gains["0.fc2"] == "measured" and gains["0.fc1"] == "predicted"
    assert any(line.split()[0] == "0.fc2" and line.split()[-1] == "measured" for line in lines)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class PlainUntraceable(nn.Module):
    """A plain residual net whose forward fx cannot trace (control flow on a shape)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(4, 8, 3, padding=1)
        self.c1 = nn.ModuleList(nn.Conv1d(8, 8, 3, padding=1) for _ in range(3))
        self.c2 = nn.ModuleList(nn.Conv1d(8, 8, 3, padding=1) for _ in range(3))

    def forward(self, x):
        h = self.stem(x)
        for a, b in zip(self.c1, self.c2):
            if h.shape[-1] > 1:
                h = h + b(torch.relu(a(h)))
        return h


def test_peers_find_branches_of_an_untraceable_model_with_an_example_input():
    from wninit import peers

    with pytest.raises(UserError, match="pass example_inputs= a batch the model accepts to wninit.peers.apply"):
        peers.apply(PlainUntraceable(), "skipinit")
    model = peers.apply(PlainUntraceable(), "skipinit", example_inputs=torch.randn(2, 4, 16))
    x = torch.randn(2, 4, 16)
    assert torch.equal(model(x), model.stem(x))  # SkipInit's alpha 0: every branch adds nothing


def test_propagation_discovers_an_untraceable_model_on_its_batch():
    from wninit.diagnostics import propagation

    model = wninit.weight_norm(PlainUntraceable())
    wninit.initialize(model, example_inputs=torch.randn(2, 4, 16))
    table = propagation(model, torch.randn(4, 4, 16))
    names = [r.name for r in table]
    assert names == ["stem", "sum1", "sum2", "sum3"]  # the stem passes on the stage input; the model's own sums
    assert all(math.isfinite(r.forward_mean) and math.isfinite(r.backward_mean) for r in table)


UNTRACEABLE_MODULE = '''
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = weight_norm(nn.Conv1d(4, 8, 3, padding=1))
        self.a = nn.ModuleList(weight_norm(nn.Conv1d(8, 8, 3, padding=1)) for _ in range(2))
        self.b = nn.ModuleList(weight_norm(nn.Conv1d(8, 8, 3, padding=1)) for _ in range(2))

    def forward(self, x):
        h = self.stem(x)
        for a, b in zip(self.a, self.b):
            if len(h) > 0:
                h = h + b(torch.relu(a(h)))
        return h


def build():
    return Net()
'''


def test_cli_input_shape_traces_an_untraceable_model_by_running(tmp_path, capsys):
    from wninit.suite.cli import main

    (tmp_path / "untraceable.py").write_text(UNTRACEABLE_MODULE)
    target = f"{tmp_path / 'untraceable.py'}:build"
    assert main(["explain", target]) == 2
    assert "pass example_inputs=" in capsys.readouterr().err
    assert main(["explain", target, "--input-shape", "4,16"]) == 0
    printed = capsys.readouterr().out
    assert "measured" in printed and "(5 layers" in printed and "default 0" in printed.replace("0 default", "default 0")
