"""convert_state_dict and `wninit convert`: a checkpoint's g and v under another API, folded, or loaded into
a model of another layout; bad input named in one sentence, the input never modified."""
import hashlib

import pytest
import torch
from torch import nn

import wninit
from wninit.weightnorm.state_dict import TARGETS, fold
from wninit.suite.cli import main
from wninit.errors import UserError
from wninit.weightnorm.access import APIS, effective_weight, weight_normed_layers
from zoo import ZOO

KEYS = {"legacy": ("weight_g", "weight_v"), "torch": ("parametrizations.weight.original0",
                                                        "parametrizations.weight.original1"), "wninit": ("g", "v")}


pytestmark = pytest.mark.usefixtures("one_thread")


def hifigan(api, seed):
    torch.manual_seed(seed)
    return ZOO["hifigan_generator"][0](api=api).eval()


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_a_legacy_hifigan_checkpoint_loads_into_a_parametrization_model_with_identical_outputs():
    legacy, model = hifigan("legacy", seed=0), hifigan("torch", seed=1)
    x = torch.randn(ZOO["hifigan_generator"][1])
    saved = legacy.state_dict()
    kept = {k: v.clone() for k, v in saved.items()}
    converted = wninit.convert_state_dict(saved, to=model)
    assert converted._metadata["conv_pre"] == saved._metadata["conv_pre"]  # module versions, as torch keeps them
    model.load_state_dict(converted)
    assert torch.equal(outputs(model, x), outputs(legacy, x))
    assert same(saved, kept)  # the input state dict is not changed
    back = hifigan("legacy", seed=2)  # the other way, which torch's own load hook does not do
    with pytest.raises(RuntimeError, match="Missing key"):
        back.load_state_dict(model.state_dict())
    back.load_state_dict(wninit.convert_state_dict(model.state_dict(), to=back))
    assert torch.equal(outputs(back, x), outputs(legacy, x))


@pytest.mark.parametrize("name", ["hifigan_generator", "resnext", "mobilenet_v1", "wavenet"])
def test_state_dict_round_trip_between_the_three_layouts_is_bit_for_bit(name):
    torch.manual_seed(0)
    source = ZOO[name][0](api="legacy").state_dict()
    sd = source
    for to in ("torch", "wninit", "legacy"):
        sd = wninit.convert_state_dict(sd, to)
        layouts = {api for k in sd for api in APIS if k.endswith("." + KEYS[api][0])}
        assert layouts == {to}
    assert same(sd, source)


@pytest.mark.parametrize("name", ["resnet50", "hifigan_generator", "mobilenet_v1"])
def test_plain_state_dict_is_the_folded_model_and_loads_back_into_a_wn_model(name):
    torch.manual_seed(0)
    make, shape = ZOO[name]
    model, x = make().eval(), torch.randn(shape)
    y0 = outputs(model, x)
    plain_sd = wninit.convert_state_dict(model.state_dict(), "plain")
    plain = wninit.remove_weight_norm(make().eval())
    plain.load_state_dict(plain_sd)
    assert same(plain.state_dict(), wninit.remove_weight_norm(model).state_dict())  # one fold, two routes
    assert ((outputs(plain, x) - y0).norm() / y0.norm()).item() <= 1e-6
    torch.manual_seed(1)
    wn = make(api="torch").eval()
    wn.load_state_dict(wninit.convert_state_dict(plain_sd, to=wn))
    for (_, layer), (_, p) in zip(weight_normed_layers(wn), weight_normed_layers(plain)):
        w = p.weight.detach()
        assert torch.allclose(wninit.wn_g(layer), w.flatten(1).norm(dim=1), rtol=4e-7, atol=0)  # g = ||w_u||
        assert torch.allclose(effective_weight(layer), w, rtol=1e-6, atol=0)
    assert ((outputs(wn, x) - y0).norm() / y0.norm()).item() <= 1e-6


@pytest.mark.parametrize("dim", [0, 1, None])
@pytest.mark.parametrize("kind, args", [(nn.Linear, (6, 5)), (nn.Conv2d, (4, 6, 3)), (nn.ConvTranspose1d, (4, 6, 3)),
                                        (nn.ConvTranspose2d, (4, 6, 3))])
def test_every_layer_kind_and_dim_loads_under_each_api(kind, args, dim):
    for src in APIS:
        torch.manual_seed(0)
        layer = wninit.weight_norm(kind(*args), src, dim)
        wninit.set_g_(layer, torch.rand(wninit.wn_g(layer).numel()) + 0.5)
        for to in APIS:
            target = wninit.weight_norm(kind(*args), to, dim)
            target.load_state_dict(wninit.convert_state_dict(layer.state_dict(), to=target))
            assert torch.equal(effective_weight(target), effective_weight(layer)), (src, to)
            by_name = kind(*args)
            by_name = wninit.weight_norm(by_name, to, dim)
            by_name.load_state_dict(wninit.convert_state_dict(layer.state_dict(), to))  # no model: g's shape says dim
            assert torch.equal(effective_weight(by_name), effective_weight(layer)), (src, to)


def test_a_checkpoint_normalized_along_another_dim_goes_through_the_weight():
    torch.manual_seed(0)
    per_input = wninit.weight_norm(nn.ConvTranspose1d(4, 6, 3), "legacy", dim=0)  # torch's default
    per_output = wninit.weight_norm(nn.ConvTranspose1d(4, 6, 3), "torch", dim=1)
    per_output.load_state_dict(wninit.convert_state_dict(per_input.state_dict(), to=per_output))
    w = fold(per_input.weight_g, per_input.weight_v, 0)
    assert torch.allclose(wninit.wn_g(per_output), w.transpose(0, 1).flatten(1).norm(dim=1), rtol=4e-7, atol=0)
    assert torch.allclose(effective_weight(per_output), effective_weight(per_input), rtol=1e-6, atol=0)


def model_pair():
    torch.manual_seed(0)
    return hifigan("legacy", 0).state_dict(), hifigan("torch", 1)


def test_missing_key_is_named():
    sd, model = model_pair()
    del sd["conv_post.bias"]
    with pytest.raises(UserError, match=r"misses the key 'conv_post.bias' for this Generator"):
        wninit.convert_state_dict(sd, to=model)


def test_extra_key_is_named():
    sd, model = model_pair()
    sd["head.weight"] = torch.zeros(3)
    with pytest.raises(UserError, match=r"unexpected key 'head.weight' for this Generator"):
        wninit.convert_state_dict(sd, to=model)


def test_another_architecture_is_named_by_its_first_odd_key():
    _, model = model_pair()
    torch.manual_seed(0)
    smaller = ZOO["hifigan_generator"][0](initial_channels=16).state_dict()  # same keys, other shapes
    with pytest.raises(UserError, match=r"key 'conv_pre.bias' has shape \(16,\) but this Generator needs "
                                        r"\(32,\): build the model with the checkpoint's sizes"):
        wninit.convert_state_dict(smaller, to=model)
    with pytest.raises(UserError, match=r"misses the key '0.bias' \(and 2 more\) for this Sequential"):
        wninit.convert_state_dict(smaller, to=nn.Sequential(wninit.weight_norm(nn.Linear(2, 2), "legacy")))


def test_unknown_target_and_damaged_g_are_one_sentence():
    with pytest.raises(UserError, match=r"unknown weight-norm target 'tf': choose one of 'wninit', 'torch', "
                                        r"'legacy', 'plain'"):
        wninit.convert_state_dict({}, "tf")
    sd = wninit.weight_norm(nn.Linear(3, 4), "legacy").state_dict()
    sd["weight_g"] = torch.ones(3, 1)
    with pytest.raises(UserError, match=r"'weight_g' has shape \(3, 1\), which is not one gain per unit of 'weight_v'"):
        wninit.convert_state_dict(sd, "torch")


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_converts_a_hifigan_checkpoint_and_keeps_the_input(tmp_path, capsys):
    legacy, model = hifigan("legacy", 0), hifigan("torch", 1)
    ckpt = tmp_path / "g_00000100"
    torch.save({"generator": legacy.state_dict(), "steps": 100}, ckpt)
    before = digest(ckpt)
    assert main(["convert", str(ckpt), "--to", "torch", "--out", str(tmp_path / "t.pt")]) == 0
    assert "converted 78 weight-normalized layers ('generator')" in capsys.readouterr().out
    saved = torch.load(tmp_path / "t.pt", weights_only=True)
    assert saved["steps"] == 100
    model.load_state_dict(saved["generator"])
    x = torch.randn(ZOO["hifigan_generator"][1])
    assert torch.equal(outputs(model, x), outputs(legacy, x))
    assert main(["convert", str(ckpt), "--to", "plain", "--out", str(tmp_path / "p.pt")]) == 0
    plain = wninit.remove_weight_norm(hifigan("legacy", 2))
    plain.load_state_dict(torch.load(tmp_path / "p.pt", weights_only=True)["generator"])
    y = outputs(legacy, x)
    assert ((outputs(plain, x) - y).norm() / y.norm()).item() <= 1e-6
    assert digest(ckpt) == before


@pytest.mark.parametrize("case, message", [
    ("junk", "'{dir}/junk.pt' is not a checkpoint torch.load can read"),
    ("no_state_dict", "holds no state dict"),
    ("plain", "has no weight-normalized layer"),
    ("same_out", "is the input checkpoint, which convert never overwrites"),
    ("missing", "checkpoint '{dir}/missing.pt' does not exist"),
    ("folder", "checkpoint '{dir}/folder' is a folder"),
])
def test_cli_bad_input_is_one_sentence_exit_2_and_the_input_unchanged(tmp_path, capsys, case, message):
    path = tmp_path / {"missing": "missing.pt", "junk": "junk.pt", "folder": "folder"}.get(case, "in.pt")
    if case == "folder":
        path.mkdir()
    elif case == "junk":
        path.write_bytes(b"not a checkpoint\n" * 10)
    elif case == "no_state_dict":
        torch.save({"steps": 3}, path)
    elif case == "plain":
        torch.save(nn.Linear(2, 2).state_dict(), path)
    elif case == "same_out":
        torch.save(wninit.weight_norm(nn.Linear(2, 2), "legacy").state_dict(), path)
    before = digest(path) if path.is_file() else None
    out = path if case == "same_out" else tmp_path / "out.pt"
    assert main(["convert", str(path), "--to", "torch", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message.format(dir=tmp_path) in err
    assert (digest(path) if path.is_file() else None) == before
    assert case == "same_out" or not out.exists()


def test_cli_unknown_target_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "x.pt", "--to", "tf", "--out", "y.pt"])
    assert exc.value.code == 2 and "invalid choice: 'tf'" in capsys.readouterr().err
    assert set(TARGETS) == {"wninit", "torch", "legacy", "plain"}
