"""``wninit hessian --arch A --depth D [--schemes ...] [--seeds N]``: log Hessian spectral norm at init (Table 2).

For each scheme and seed: build, initialize, and estimate ``||H||_2`` of the mean cross-entropy over the
first ``--batches`` batches of the shuffled training split by power iteration (docs/method.md §7.6); prints
``ln ||H||_2`` mean ± std over seeds per scheme.
"""
from __future__ import annotations

from ..errors import UserError
from .model_args import add_model_arguments, model_width

__all__ = ["add_parser", "run"]


def add_parser(subparsers):
    p = subparsers.add_parser("hessian", help="log spectral norm of the loss Hessian at init, per scheme (Table 2)",
                              description=__doc__.split("\n\n")[0])
    add_model_arguments(p)
    p.add_argument("--schemes", default="proposed,datadep,pytorch-default,hanin",
                   help="comma-separated WN schemes (default: the four of Table 2)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--dataset", default="mnist5k", help="mnist5k (embedded real MNIST, default), synthetic, or any "
                   "dataset wninit.data.load_dataset knows")
    p.add_argument("--data-root", default=None, help="folder of downloaded datasets (default $WNINIT_DATA)")
    p.add_argument("--batches", type=int, default=4, help="training batches in the loss (default 4)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--iters", type=int, default=20, help="power iterations (default 20)")
    return p


def _schemes(text: str) -> list[str]:
    from ..schemes import WN_SCHEMES

    schemes = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in schemes if s not in WN_SCHEMES]
    if not schemes or bad:
        raise UserError(f"--schemes must list WN schemes among {', '.join(WN_SCHEMES)}, got {text!r}")
    return schemes


def run(args) -> int:
    import torch

    from ..data import Loader, load_dataset
    from ..diagnostics.hessian import log_spectral_norms
    from ..models import build_model

    schemes = _schemes(args.schemes)
    for name in ("seeds", "batches", "batch_size", "iters"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    cache, shapes = {}, {}

    def batches(seed):
        # docs/method.md §7.6: the reference takes the batches from the shuffled, augmented training loader, so they move
        # with the seed; kept per seed (not the dataset: CIFAR would hold 600 MB per seed)
        if seed not in cache:
            ds = load_dataset(args.dataset, root=args.data_root, seed=seed)
            shapes.update(in_shape=ds.in_shape, num_classes=ds.num_classes)
            loader = Loader(ds.train, args.batch_size, shuffle=True, crop=4 if ds.augment else 0, flip=ds.augment,
                            generator=torch.Generator().manual_seed(seed))
            cache[seed] = [b for b, _ in zip(loader, range(args.batches))]
        return cache[seed]

    first = batches(0)
    width = model_width(args)

    def make_model():
        return build_model(args.arch, in_shape=shapes["in_shape"], num_classes=shapes["num_classes"], depth=args.depth,
                           width=width, k=args.k, norm="wn")

    make_model()  # a bad --arch/--depth fails here, before any Hessian is computed
    print(f"{args.arch} depth {args.depth} on {args.dataset}: {args.batches} x {len(first[0][1])} images, "
          f"{args.iters} power iterations, {args.seeds} seeds")
    for result in log_spectral_norms(make_model, schemes, range(args.seeds), batches, iters=args.iters,
                                     direction=args.direction):
        print(result)
    print("ln is the natural log (the base of the paper's log is not known; docs/method.md §7.6)")
    return 0
