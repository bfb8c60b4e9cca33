"""A digest of every g and v ``initialize(model, "proposed")`` writes on the paper's models and the fx-traceable zoo,
without an example input: the path that must stay bit-identical (tests/test_trace_by_running.py pins it)."""
import hashlib
import warnings

import torch

import wninit
from wninit.models import build_model
from wninit.weightnorm.access import is_weight_normed, wn_parameters


def _digest(model) -> str:
    h = hashlib.sha256()
    for name, m in model.named_modules():
        if is_weight_normed(m):
            _, g, v = wn_parameters(m)
            h.update(name.encode())
            h.update(g.detach().contiguous().numpy().tobytes())
            h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


FX_ZOO = ("resnet50", "preact_resnet", "hifigan_generator", "wavenet", "impala_cnn", "resnext", "mobilenet_v1", "mixer")


def paper_models():
    return {"mlp": lambda: build_model("mlp", in_shape=(1, 8, 8), num_classes=10, depth=6, width=32),
            "cnn": lambda: build_model("cnn", in_shape=(3, 16, 16), num_classes=10, depth=4, width=8),
            "resnet": lambda: build_model("resnet", in_shape=(3, 16, 16), num_classes=10, depth=20, width=8),
            "wrn": lambda: build_model("wrn", in_shape=(3, 16, 16), num_classes=10, depth=10, width=8, k=2)}


def digests(builders) -> dict[str, str]:
    out = {}
    for name, build in builders.items():
        torch.manual_seed(0)
        model = build()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wninit.initialize(model, "proposed", generator=torch.Generator().manual_seed(0))
        out[name] = _digest(model)
    return out


if __name__ == "__main__":
    from zoo import ZOO
    print(digests(paper_models()))
    print(digests({k: ZOO[k][0] for k in FX_ZOO}))
