"""The normalizer-free peers (wninit.peers): each method's defining property, on the suite's nets and the zoo.

- Fixup: every branch layer but the last is He's draw times ``L^(-1/(2m-2))`` (exactly), the last and the
  classifier are zero;
- SkipInit / ReZero: the model equals its identity-branch version at init (outputs identical) and every
  branch scalar gets a nonzero gradient;
- NF: standardized weights have zero mean and unit variance per unit; the stream entering block ``i`` has the
  variance ``beta_i^2`` predicts within 10%;
- LSUV: every layer's output variance on the batch within 2% of 1;
- delta-orthogonal: kernels zero off-center, the center orthogonal (times the ReLU gain where a ReLU follows);
- EDM2: rows unit-norm after every training step, sums magnitude-preserving;
- the zoo: each applicable peer through one call; the others one sentence; bad input exit 2 from the CLI.
"""
import contextlib
import math
import warnings

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import wninit
from wninit import peers
from wninit.errors import UserError
from wninit.models import CNN, MLP, ResNet, WideResNet
from wninit.peers._graph import InputScale, ScaledBranch, branches, plain_layers
from wninit.peers.delta_orthogonal import center_index
from wninit.peers.edm2 import _scaled, mp_sum
from wninit.peers.fixup import fixup_scale
from wninit.peers.nf import RELU_GAIN, Standardized, expected_stream_variances, standardize
from wninit.structure.graph import Graph
from wninit.structure.trace import discover
from wninit.suite.train import RunConfig
from zoo import MODERN_ZOO, ZOO

RESIDUAL_ZOO = ("resnet50", "preact_resnet", "hifigan_generator", "wavenet", "impala_cnn", "resnext", "mixer")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _plain_zoo(name: str, seed: int = 0) -> nn.Module:
    """A zoo model with its weight norm removed (torch's own function): the plain architecture."""
    torch.manual_seed(seed)
    model = {**ZOO, **MODERN_ZOO}[name][0](api="torch")
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight")
    return model


def _identity_branch_version(model: nn.Module) -> fx.GraphModule:
    """``model`` with every residual sum replaced by its skip operand (the branches contribute nothing)."""
    s = discover(model, layers="any")
    G = Graph(model, s.graph, any_layer=True)
    nodes = {n.name: n for n in s.graph.nodes}
    for r in s.sums:
        node, end = nodes[r.node], s.layer_nodes[r.branch_end]

        def reaches(n):
            while n.name != end and len(G.tensor_inputs(n)) == 1:
                n = G.tensor_inputs(n)[0]
            return n.name == end
        a, b = node.args[:2]
        node.replace_all_uses_with(a if reaches(b) else b)
        s.graph.erase_node(node)
    gm = fx.GraphModule(model, s.graph)
    gm.graph.eliminate_dead_code()  # the branches nothing reads any more
    gm.recompile()
    return gm


# -- Fixup --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["resnet20", "resnet50"])
def test_fixup_scales_branch_layers_by_L_to_the_minus_1_over_2m_minus_2_and_zeroes_last_layers(case):
    build = (lambda: ResNet(20, 10, 3, 16, norm="none")) if case == "resnet20" else (lambda: _plain_zoo("resnet50"))
    # ResNet-20: 9 branches of m = 2 convs; ResNet-50: 16 bottlenecks of m = 3 convs (conv1, conv2 scaled)
    L, m, scaled, last, head = (9, 2, ("conv1",), "conv2", "head") if case == "resnet20" else \
        (16, 3, ("conv1", "conv2"), "conv3", "fc")
    model, he = build(), build()
    peers.apply(model, "fixup", generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    for _, layer in plain_layers(he):  # He et al.'s draws, in the same order from the same stream
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=gen)
    expected = L ** (-1.0 / (2 * m - 2))
    assert fixup_scale(L, m) == pytest.approx(expected)
    blocks = [n for n, mod in he.named_modules() if hasattr(mod, last) and not isinstance(mod, nn.Sequential)]
    assert len(blocks) == L
    for b in blocks:
        for name in scaled:
            got = model.get_submodule(f"{b}.{name}.layer").weight
            torch.testing.assert_close(got, he.get_submodule(f"{b}.{name}").weight * expected, rtol=1e-6, atol=0)
        end = model.get_submodule(f"{b}.{last}")
        assert torch.count_nonzero(end.layer.weight) == 0 and float(end.scale.detach()) == 1.0
    assert torch.count_nonzero(model.get_submodule(head).layer.weight) == 0
    stem = "stem" if case == "resnet20" else "conv1"
    torch.testing.assert_close(model.get_submodule(stem).weight, he.get_submodule(stem).weight, rtol=0, atol=0)


def test_fixup_branch_signal_before_the_last_layer_is_the_he_branch_times_the_scale_per_layer():
    # ResNet-50: L = 16 bottlenecks of m = 3 convs; conv2(relu(conv1(x))) is positively homogeneous in the two
    # scaled weights, so under Fixup it is He's (same draws) times L^(-1/4) per layer: L^(-1/2) = 1/4 exactly.
    model, he = _plain_zoo("resnet50"), _plain_zoo("resnet50")
    peers.apply(model, "fixup", generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    for _, layer in plain_layers(he):
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=gen)
        nn.init.zeros_(layer.bias)
    with torch.no_grad():
        for name in ("layer3.1", "layer4.2"):
            f, h = model.get_submodule(name), he.get_submodule(name)
            x = torch.randn(2, h.conv1.in_channels, 8, 8, generator=torch.Generator().manual_seed(6))
            ratio = f.conv2(F.relu(f.conv1(x))).norm() / h.conv2(F.relu(h.conv1(x))).norm()
            assert float(ratio) == pytest.approx(16 ** -0.5, rel=1e-5)
            assert torch.count_nonzero(f.conv3(torch.randn(2, f.conv3.layer.in_channels, 4, 4))) == 0


# -- SkipInit / ReZero ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["skipinit", "rezero"])
@pytest.mark.parametrize("name", ["wrn", "preact_resnet", "wavenet", "mixer"])
def test_skipinit_and_rezero_equal_the_identity_branch_model_and_train_their_scalars(method, name):
    model = WideResNet(10, 2, 10, norm="none") if name == "wrn" else _plain_zoo(name)
    shape = (2, 3, 16, 16) if name == "wrn" else ZOO[name][1]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = _identity_branch_version(model)(x)
    with pytest.warns(UserWarning, match="LayerNorm|normalization") if name == "mixer" else contextlib.nullcontext():
        out = peers.apply(model, method)  # the Mixer's LayerNorms are kept, and it says so
    y = out(x)
    assert torch.equal(y, reference)
    scalars = [m.alpha for m in out.modules() if isinstance(m, ScaledBranch)]
    assert len(scalars) == len(discover(_plain_zoo(name) if name != "wrn" else WideResNet(10, 2, 10, norm="none"),
                                        layers="any").sums)
    y.square().sum().backward()
    assert all(a.grad is not None and float(a.grad) != 0.0 for a in scalars)


# -- NF-ResNets ----------------------------------------------------------------------------------------
def test_nf_standardized_weights_have_zero_mean_and_unit_variance_per_unit():
    model = peers.apply(ResNet(20, 10, 3, 16, norm="none"), "nf")
    found = [(n, m) for n, m in model.named_modules() if parametrize.is_parametrized(m, "weight")]
    assert len(found) == 19 + 2  # every conv (stem, 18 block convs, 2 projections), not the classifier
    for name, layer in found:
        p = layer.parametrizations.weight[0]
        assert isinstance(p, Standardized)
        # conv2 reads a ReLU: the ReLU gain 1/std(relu(z)); the others read the stream: 1
        assert p.gamma == pytest.approx(RELU_GAIN if name.endswith("conv2.layer") else 1.0)
        w = standardize(layer.parametrizations.weight.original, 1.0).flatten(1) * math.sqrt(layer.weight[0].numel())
        torch.testing.assert_close(w.mean(dim=1), torch.zeros(w.size(0)), rtol=0, atol=1e-5)
        torch.testing.assert_close(w.var(dim=1, unbiased=False), torch.ones(w.size(0)), rtol=0, atol=1e-4)
    assert RELU_GAIN == pytest.approx(1.0 / math.sqrt(0.5 - 1.0 / (2 * math.pi)))


def test_nf_stream_variance_grows_as_beta_squared_predicts():
    torch.manual_seed(0)
    alpha = 0.4
    model = ResNet(56, 10, 3, 16, norm="none")
    structure = discover(model, layers="any")
    model = peers.apply(model, "nf", alpha=alpha)
    predicted, _ = expected_stream_variances(branches(structure, "nf"), alpha)
    measured = {}

    def record(name):
        def hook(module, inputs, _out):
            x = inputs[0]
            measured.setdefault(name, float(x.transpose(0, 1).flatten(1).var(dim=1).mean()))
        return hook
    entries = [(n, m) for n, m in model.named_modules() if isinstance(m, InputScale) and n.endswith("conv1")]
    for n, m in entries:
        m.register_forward_hook(record(n))
    with torch.no_grad():
        model(torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(2)))
    assert len(entries) == 27 and predicted[:3] == pytest.approx([1, 1 + alpha ** 2, 1 + 2 * alpha ** 2])
    assert max(predicted) == pytest.approx(1 + 9 * alpha ** 2)  # 9 blocks of stage 1 (no projection)
    for (n, _), beta2 in zip(entries, predicted):
        assert measured[n] == pytest.approx(beta2, rel=0.10), n


# -- LSUV ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "cnn", "resnext"])
def test_lsuv_leaves_every_layer_output_variance_within_2_percent_of_1_on_its_batch(name):
    torch.manual_seed(0)
    model = {"mlp": lambda: MLP(64, 32, 20, 10, "none"), "cnn": lambda: CNN(3, 16, 10, 10, "none"),
             "resnext": lambda: _plain_zoo("resnext")}[name]()
    shape = {"mlp": (128, 64), "cnn": (32, 3, 16, 16), "resnext": (8, 3, 16, 16)}[name]
    batch = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    peers.apply(model, "lsuv", batch=batch)
    variances = {}

    def record(name):
        def hook(_m, _i, out):
            variances.setdefault(name, float(out.var()))
        return hook
    handles = [m.register_forward_hook(record(n)) for n, m in plain_layers(model)]
    with torch.no_grad():
        model(batch)
    for h in handles:
        h.remove()
    assert len(variances) == len(plain_layers(model))
    assert all(abs(v - 1.0) <= 0.02 for v in variances.values()), variances


class KwargsNet(nn.Module):
    """A model called with keyword arguments only (transformers' audio models: ``input_values=``)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 8)

    def forward(self, *, input_values, scale=1.0):
        return self.fc2(torch.tanh(self.fc1(input_values * scale)))


def test_lsuv_measures_on_the_example_inputs_of_apply_any_form():
    model = KwargsNet()
    x = {"input_values": torch.randn(64, 16, generator=torch.Generator().manual_seed(1)) * 5.0}
    peers.apply(model, "lsuv", example_inputs=x, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = model.fc1(x["input_values"])
        out = model.fc2(torch.tanh(h))
    assert float(h.var()) == pytest.approx(1.0, abs=0.02) and float(out.var()) == pytest.approx(1.0, abs=0.02)


def test_lsuv_without_a_batch_is_one_sentence():
    with pytest.raises(UserError, match="needs|batch"):
        peers.apply(MLP(64, 32, 5, 10, "none"), "lsuv")


# -- delta-orthogonal ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cnn", "resnext"])
def test_delta_orthogonal_kernels_are_zero_off_center_with_an_orthogonal_center(name):
    model = CNN(3, 16, 6, 10, "none") if name == "cnn" else _plain_zoo("resnext")
    peers.apply(model, "delta-orthogonal", generator=torch.Generator().manual_seed(0))
    relu_follows = {n: r.follow == 0.5 for n, r in discover(model, layers="any").roles.items()}
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for n, conv in convs:
        w = conv.weight.detach()
        center = w[center_index(w)].clone()
        off = w.clone()
        off[center_index(w)] = 0
        assert torch.count_nonzero(off) == 0
        gain2 = 2.0 if relu_follows[n] else 1.0
        for block in center.chunk(conv.groups, dim=0):  # one orthogonal block per group
            gram = block @ block.T if block.size(0) <= block.size(1) else block.T @ block
            torch.testing.assert_close(gram, gain2 * torch.eye(gram.size(0)), rtol=0, atol=1e-5)


def test_delta_orthogonal_on_a_net_without_convolutions_is_one_sentence():
    with pytest.raises(UserError, match="convolutions"):
        peers.apply(MLP(64, 32, 5, 10, "none"), "delta-orthogonal")


# -- EDM2 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit_rows", [False, True])
def test_edm2_rows_are_unit_norm_after_every_step(unit_rows):
    torch.manual_seed(0)
    model = peers.apply(ResNet(20, 10, 3, 16, norm="none"), "edm2", unit_rows=unit_rows,
                        generator=torch.Generator().manual_seed(0))
    layers = [m for m in model.modules() if parametrize.is_parametrized(m, "weight")]
    assert len(layers) == 22 and all(m.bias is None for m in layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)  # decay shrinks the rows
    x, y = torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))
    model.train()
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)  # forced WN: the stored rows renormalized first
        for m in layers:  # stored rows: the paper's unit mean square (norm sqrt(N)), or norm 1
            stored = m.parametrizations.weight.original.detach().flatten(1)
            size = stored.square().sum(dim=1) if unit_rows else stored.square().mean(dim=1)
            torch.testing.assert_close(size, torch.ones(stored.size(0)), rtol=0, atol=1e-3)
            used = m.weight.detach().flatten(1)
            torch.testing.assert_close(used.norm(dim=1), torch.ones(used.size(0)), rtol=0, atol=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        moved = max(float((m.parametrizations.weight.original.detach().flatten(1).square().mean(dim=1)
                           * (m.weight[0].numel() if unit_rows else 1) - 1).abs().max()) for m in layers)
        assert moved > 1e-2  # the step did move the rows off the sphere: the next forward brings them back


def test_edm2_sums_and_relus_preserve_magnitude():
    a, b = torch.randn(200_000, generator=torch.Generator().manual_seed(0)).chunk(2)
    assert float(mp_sum(a, b, 0.3).square().mean()) == pytest.approx(1.0, rel=0.02)
    model = peers.apply(ResNet(20, 10, 3, 16, norm="none"), "edm2")
    relus = [n for n in model.graph.nodes if n.target is _scaled]
    assert relus and all(n.args[1] == pytest.approx(math.sqrt(2)) for n in relus)
    assert sum(n.target is mp_sum for n in model.graph.nodes) == 9


# -- any model: the zoo ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("method", list(peers.PEERS))
def test_each_applicable_peer_runs_on_every_zoo_model_in_one_call(name, method):
    model = _plain_zoo(name)
    x = torch.randn(ZOO[name][1], generator=torch.Generator().manual_seed(0))
    residual = peers.PEERS[method].needs == "residual"
    if residual and name not in RESIDUAL_ZOO:
        with pytest.raises(UserError, match="residual branches and this model has none"):
            peers.apply(model, method, batch=x)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NF names HiFi-GAN's transposed convs it leaves unstandardized
        out = peers.apply(model, method, batch=x, generator=torch.Generator().manual_seed(0))
    y = out(x)
    assert torch.isfinite(y).all()
    (y - torch.randn(y.shape, generator=torch.Generator().manual_seed(1))).square().mean().backward()
    grads = [p.grad for p in out.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)  # every parameter is in the graph
    assert any(g.abs().sum() > 0 for g in grads)


# The newer zoo models (post-2019 branch shapes) with an example input: each peer works or says in one sentence
# why not. nn.MultiheadAttention reads its out_proj's weight without calling it, so no wrapper of it can act;
# EDM2 rebuilds the traced program, which the fused pre-activation net (torch.fx fails on it) does not have.
REFUSED = {("vit", "fixup"): "MultiheadAttention", ("vit", "skipinit"): "MultiheadAttention",
           ("vit", "rezero"): "MultiheadAttention", ("vit", "nf"): "MultiheadAttention",
           ("preact_fused", "edm2"): "no program to rebuild"}


@pytest.mark.parametrize("name", list(MODERN_ZOO))
@pytest.mark.parametrize("method", list(peers.PEERS))
def test_each_peer_works_or_refuses_in_one_sentence_on_the_newer_zoo_models(name, method):
    model = _plain_zoo(name)
    x = torch.randn(MODERN_ZOO[name][1], generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # normalization layers kept, concatenations kept: named, not the claim
        if (name, method) in REFUSED:
            with pytest.raises(UserError, match=REFUSED[name, method]) as info:
                peers.apply(model, method, example_inputs=x, generator=torch.Generator().manual_seed(0))
            assert "\n" not in str(info.value)
            after = model.state_dict()  # refused before changing anything
            assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
            return
        out = peers.apply(model, method, example_inputs=x, generator=torch.Generator().manual_seed(0))
    y = out(x)
    assert torch.isfinite(y).all()
    (y - torch.randn(y.shape, generator=torch.Generator().manual_seed(1))).square().mean().backward()
    grads = [p.grad for p in out.parameters() if p.requires_grad]
    assert all(g is None or torch.isfinite(g).all() for g in grads) and any(g is not None and g.abs().sum() > 0
                                                                            for g in grads)


def test_edm2_with_an_example_input_rebuilds_the_traced_program():
    """EDM2's result is a program: with example_inputs it is the fx one (identical to without), a model fx
    cannot trace is refused in one sentence, and concatenation sums (DenseNet) are kept as they are."""
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = peers.apply(ResNet(20, 10, 3, 16, norm="none"), "edm2", generator=torch.Generator().manual_seed(0))
    b = peers.apply(ResNet(20, 10, 3, 16, norm="none"), "edm2", example_inputs=x,
                    generator=torch.Generator().manual_seed(0))
    assert isinstance(b, fx.GraphModule) and torch.equal(a(x), b(x))
    assert sum(n.target is mp_sum for n in b.graph.nodes) == 9
    with pytest.raises(UserError, match="torch.fx cannot trace PreActFused"):
        peers.apply(_plain_zoo("preact_fused"), "edm2", example_inputs=torch.randn(MODERN_ZOO["preact_fused"][1]))
    with pytest.warns(UserWarning, match="concatenations are kept"):
        dense = peers.apply(_plain_zoo("densenet"), "edm2")
    assert not any(n.target is mp_sum for n in dense.graph.nodes if n.target in (torch.cat, torch.concat))


# -- bad input -------------------------------------------------------------------------------------------
def test_bad_peer_input_is_one_sentence():
    with pytest.raises(UserError, match="unknown peer 'fixup2'"):
        peers.apply(ResNet(20, 10, norm="none"), "fixup2")
    with pytest.raises(UserError, match="unknown option 'beta' for peer 'nf'"):
        peers.apply(ResNet(20, 10, norm="none"), "nf", beta=1.0)
    with pytest.raises(UserError, match="weight-normed"):
        peers.apply(ResNet(20, 10, norm="wn"), "rezero")
    with pytest.raises(UserError, match="residual branches and arch 'mlp' has none"):
        RunConfig(arch="mlp", norm="none", scheme="he", peer="fixup")
    with pytest.raises(UserError, match="key=value"):
        RunConfig(arch="resnet", depth=20, norm="none", scheme="he", peer="nf:alpha")


@pytest.mark.parametrize("args, says", [
    (["--arch", "mlp", "--norm", "none", "--scheme", "he", "--peer", "fixup"], "has none"),
    (["--arch", "wrn", "--depth", "10", "--norm", "none", "--scheme", "he", "--peer", "nf:gamma=2"], "unknown option"),
])
def test_cli_exits_2_with_one_sentence_on_a_peer_that_cannot_apply(args, says, capsys, tmp_path):
    from wninit.suite.cli import main
    code = main(["train", "--out", str(tmp_path / "run"), "--dataset", "digits", "--epochs", "1"] + args)
    assert code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_peer_run_is_never_stacked_with_other_mlps_by_the_batched_sweep():
    from wninit.suite.sweep.ensemble import batchable
    plain = RunConfig(arch="mlp", norm="none", scheme="he")
    assert batchable(plain) and not batchable(plain.replace(peer="lsuv"))


def test_a_peer_on_a_model_with_normalization_layers_says_it_keeps_them():
    with pytest.warns(UserWarning, match="normalization layers .*blocks.0.bn1.* are kept"):
        peers.apply(ResNet(20, 10, norm="bn"), "rezero")


def test_the_init_peers_are_schemes_of_initialize():
    """LSUV and delta-orthogonal only initialize: wninit.initialize runs them and records every layer they set."""
    model = wninit.models.WideResNet(10, 1, 10, norm="none")
    x = torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    records = wninit.initialize(model, "lsuv", batch=x, generator=torch.Generator().manual_seed(0))
    assert records and {r.source for r in records} == {"peer"} and {r.rule for r in records} == {"lsuv"}
    conv = model.blocks[0].conv1
    records = wninit.initialize(model, "delta-orthogonal", generator=torch.Generator().manual_seed(0))
    off_centre = conv.weight.detach().clone()
    off_centre[:, :, 1, 1] = 0
    assert off_centre.abs().max() == 0 and conv.weight.detach()[:, :, 1, 1].abs().max() > 0
    assert len(records) == sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
