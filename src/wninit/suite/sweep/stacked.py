"""A stacked group: M small MLP runs as the training loop's M members (docs/method.md §6.1), one model with
stacked weights and SGD vectorised over the members.

`Stacked` plugs into `wninit.suite.train.loop` as a single run's model does, so a member goes
through the same per-step routine, epoch loop, divergence rule and best-checkpoint test as its standalone
`fit`. Its parts: `MemberData` (one copy of the data, each member's split, order and augmentation),
`StackedMLP` (each hidden layer holds `v` (M, out, in), `g` (M, out) and `b` (M, out), or `w`
and `b` without weight norm; the plain head holds `w` (M, C, width) and `b` (M, C); one
`torch.baddbmm` per layer for all members, member m reading only its own slice), `StackedSGD`
(`torch.optim.SGD` with per-member hyper-parameters). Member m's batches, outputs and gradients are those
of its standalone [`MLP`][wninit.models.mlp.MLP].
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from wninit.models import MLP
from wninit.weightnorm.access import is_weight_normed, wn_g, wn_v
from wninit.weightnorm.formula import wn_weight
from wninit.suite.train.config import RunConfig
from wninit.suite.train.loop import evaluate, test_best, train_epochs
from wninit.suite.train.protocol import RunRecord, build_member, check_interval, load_data, weight_decay
from wninit.suite.train.result import RunResult
from wninit.suite.train.runtime import derived_seed, env, resolve_device, run_scope
from wninit.suite.train.schedules import epoch_lrs

__all__ = ["run_group", "Stacked", "StackedMLP", "MemberView", "StackedSGD", "MemberData", "member_losses"]


# ---- the data -------------------------------------------------------------------------------------

class MemberData:
    """The training pool once on the device, each member's train/val split as indices into it.

    `load_dataset` splits the training set by `val_split_indices(n, val_fraction, seed)`; rebuilding
    the unsplit pool from one load and indexing it with each member's split gives every member the very
    tensors its own load would, without M copies of the data. The members share the test split.
    """

    def __init__(self, cfgs: list[RunConfig], device: torch.device):
        from wninit.suite.data import Loader, Split, val_split_indices

        c0 = cfgs[0]
        data = load_data(c0)
        n = len(data.train) + len(data.val)
        tr0, va0 = val_split_indices(n, c0.val_fraction, c0.seed)
        x = torch.empty((n,) + tuple(data.train.x.shape[1:]), dtype=data.train.x.dtype)
        y = torch.empty(n, dtype=data.train.y.dtype)
        x[tr0], y[tr0] = data.train.x, data.train.y
        x[va0], y[va0] = data.val.x, data.val.y
        self.x, self.y = x.to(device), y.to(device)
        self.test_x, self.test_y = data.test.x.to(device), data.test.y.to(device)
        self.pad_value = data.train.pad_value.to(device) if data.train.pad_value is not None else None
        self.in_shape, self.num_classes = data.in_shape, data.num_classes
        self.crop, self.flip, self.cutout = 4 if c0.crop else 0, bool(c0.flip), c0.cutout
        splits = [val_split_indices(n, c.val_fraction, c.seed) for c in cfgs]
        self.val_idx = torch.stack([va for _, va in splits]).to(device)  # (M, n_val)
        # A Loader over each member's train *indices*: the same permutation from the same generator as
        # its standalone Loader over the images; the augmentation is drawn right after, as there.
        self.generators = [torch.Generator(device).manual_seed(derived_seed(c.seed, "data")) for c in cfgs]
        self.loaders = [Loader(Split(tr, y[tr]), c0.loader_batch_size, shuffle=True, generator=g, device=device)
                        for (tr, _), g in zip(splits, self.generators)]

    def __len__(self) -> int:
        """Batches per epoch (the same for every member)."""
        return len(self.loaders[0])

    def _augment(self, x: torch.Tensor, m: int) -> torch.Tensor:
        from wninit.suite.data import cutout, random_crop_flip

        g = self.generators[m]
        if self.crop or self.flip:
            x = random_crop_flip(x, self.crop, self.flip, g, self.pad_value)
        if self.cutout:
            x = cutout(x, self.cutout, g)
        return x

    def batches(self):
        """One epoch of (x (M, B, features), y (M, B)): member m's batch i is its standalone run's batch i."""
        augment = self.crop or self.flip or self.cutout
        for parts in zip(*self.loaders):
            idx = torch.stack([i for i, _ in parts])
            y = torch.stack([t for _, t in parts])
            x = self.x[idx]  # one gather for all members
            if augment:
                x = torch.stack([self._augment(x[m], m) for m in range(len(parts))])
            yield x.flatten(2), y

    def first_batch(self, m: int) -> torch.Tensor:
        """Member m's first shuffled, augmented batch: what fit draws before the init (docs/method.md §4)."""
        idx, _ = next(iter(self.loaders[m]))
        return self._augment(self.x[idx], m)

    def val(self, m: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Member m's own validation split, as its standalone run holds it."""
        idx = self.val_idx[m]
        return self.x[idx], self.y[idx]


# ---- the stacked model and its SGD -----------------------------------------------------------------

def _linears(model: MLP) -> list[nn.Linear]:
    """The hidden Linear layers (WN or plain) in forward order, then the head."""
    return [m for m in model.features if isinstance(m, nn.Linear)] + [model.head]


def _weight_norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """`g * v/||v||` per output unit of every member (docs/method.md §2.1), (M, out, in).

    The M members' rows are one (M*out, in) matrix for ATen's fused weight-norm kernel, the kernel the
    standalone WN layers run (weightnorm/formula.py `wn_weight`), so each row's weight and gradients are computed as there.
    """
    m, out, n_in = v.shape
    return wn_weight(v.view(m * out, n_in), g.view(m * out)).view(m, out, n_in)


class _StackedLinear(torch.autograd.Function):
    """`x @ w^T + b` per member: x (M, B, in), w (M, out, in), b (M, out) -> (M, B, out).

    The backward computes `grad_w = grad^T @ x` directly in w's (M, out, in) layout, as a standalone
    `nn.Linear`'s backward does (autograd's `bmm` backward would give it transposed and the weight
    norm's backward would then copy it). With `per_member` it is one `mm` per member:
    NOTE: for an output width such as 10 classes, MKL's batched matmul rounds `grad^T @ x` differently
    from the single matmul of a standalone layer; the head is small, so one `mm` per member there
    costs little and keeps each member's gradient equal to its standalone run's. For the hidden
    layers the batched matmuls (and every forward) round as the single ones on the suite's CPU.
    """

    @staticmethod
    def forward(ctx, x, w, b, per_member):
        ctx.save_for_backward(x, w)
        ctx.per_member = per_member
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        grad_x = torch.bmm(grad, w) if ctx.needs_input_grad[0] else None
        if ctx.per_member:
            grad_w = torch.stack([g.t().mm(h) for g, h in zip(grad, x)])
        else:
            grad_w = torch.bmm(grad.transpose(1, 2), x)
        return grad_x, grad_w, grad.sum(1), None


def _stack(tensors) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]).contiguous())


class StackedMLP(nn.Module):
    """`len(models)` copies of an MLP (the same `depth`, `width` and norm), one stacked tensor per parameter.

    `kinds` names each entry of `params`: `"v"` (WN direction), `"g"` (WN gain),
    `"w"` (plain weight, the head's included) or `"b"` (bias). `wd_exempt_gain_bias` exempts the
    `g` and `b` entries from weight decay, as train/single_run.py `_param_groups` does.
    """

    def __init__(self, models: list[MLP]):
        super().__init__()
        first = _linears(models[0])
        self.wn = is_weight_normed(first[0])
        per_member = [_linears(m) for m in models]
        if any(len(ls) != len(first) for ls in per_member) or any(getattr(m, "norm", None) == "bn" for m in models):
            raise ValueError("StackedMLP stacks MLPs of one depth with norm 'wn' or 'none'")
        params, kinds = [], []
        for i, layer in enumerate(first):
            layers = [ls[i] for ls in per_member]
            if self.wn and i < len(first) - 1:
                params += [_stack(wn_v(lay) for lay in layers), _stack(wn_g(lay) for lay in layers)]
                kinds += ["v", "g"]
            else:
                params.append(_stack(lay.weight for lay in layers))
                kinds.append("w")
            params.append(_stack(lay.bias for lay in layers))
            kinds.append("b")
        self.params = nn.ParameterList(params)
        self.kinds = kinds
        self.members = len(models)
        # the activation the standalone MLP applies after each hidden layer (the module after its first Linear)
        modules = list(models[0].features)
        self.act = modules[modules.index(first[0]) + 1]

    def _layers(self, members: slice | None):
        """(weight, bias) per layer, the WN weight `g * v / ||v||` computed as the standalone layer does."""
        # All members: the parameters themselves (a slice view would cost a zero-filled copy in backward).
        p, i = list(self.params) if members is None else [q[members] for q in self.params], 0
        n_hidden = (len(p) - 2) // (3 if self.wn else 2)
        for _ in range(n_hidden):
            if self.wn:
                v, g, b = p[i:i + 3]
                i += 3
                yield _weight_norm(v, g), b
            else:
                yield p[i], p[i + 1]
                i += 2
        yield p[i], p[i + 1]

    def forward(self, x: torch.Tensor, members: slice | None = None) -> torch.Tensor:
        """Logits (M, B, C) for inputs (M, B, features) of `members` (all): member m sees only `x[m]`."""
        *hidden, (w_head, b_head) = self._layers(members)
        h = x
        for w, b in hidden:
            h = self.act(_StackedLinear.apply(h, w, b, False))
        return _StackedLinear.apply(h, w_head, b_head, True)

    @torch.no_grad()
    def member_state(self, m: int) -> list[torch.Tensor]:
        """A copy of member `m`'s parameters (its checkpoint)."""
        return [p[m].clone() for p in self.params]

    @torch.no_grad()
    def load_member_state(self, m: int, state: list[torch.Tensor]) -> None:
        for p, s in zip(self.params, state):
            p[m].copy_(s)

    @torch.no_grad()
    def neutralize(self, m: int) -> None:
        """Overwrite a diverged member with finite values (v = 1, everything else 0).

        Its outputs are then 0 and its gradients finite, so with a learning rate of 0 it stays as it is
        and NaN/Inf never reaches the optimizer's arithmetic; the members are independent either way.
        """
        for p, kind in zip(self.params, self.kinds):
            p[m].fill_(1.0 if kind == "v" else 0.0)


class MemberView(nn.Module):
    """Member `m` of a `StackedMLP` as a standalone model: inputs (B, ...) -> logits (B, C).

    So that the standalone evaluation (train/loop.py `evaluate`) runs on it unchanged.
    """

    def __init__(self, stacked: StackedMLP, m: int):
        super().__init__()
        self.stacked, self.members = stacked, slice(m, m + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stacked(x.flatten(1).unsqueeze(0), self.members)[0]


class StackedSGD:
    """`torch.optim.SGD` (no dampening, no Nesterov) over stacked parameters, with per-member hyper-parameters.

    For each member m, as `torch.optim.SGD` does:

    $$
    d_p = \\nabla p + wd_m p, \\quad buf = \\mu_m buf + d_p \\ (buf = d_p \\text{ at the first step}),
    \\quad p \\leftarrow p - lr_m\\, buf
    $$

    The buffer starts at 0, so `mu * 0 + d_p` is exactly the first step's `d_p`; with `mu = 0` the
    buffer is `d_p` and the step is plain SGD, as torch's. `weight_decay` is (M,) per parameter
    (0 for a member that exempts that parameter).
    """

    def __init__(self, params: list[nn.Parameter], momentum: torch.Tensor, weight_decay: list[torch.Tensor]):
        self.params = list(params)
        shapes = [(-1,) + (1,) * (p.dim() - 1) for p in self.params]
        self.use_momentum = bool((momentum != 0).any())
        self.momentum_views = [momentum.view(s) for s in shapes]
        self.decayed = [k for k, wd in enumerate(weight_decay) if bool((wd != 0).any())]
        self.decay_views = [weight_decay[k].view(shapes[k]) for k in self.decayed]
        self.buffers = [torch.zeros_like(p) for p in self.params] if self.use_momentum else None
        self._neg_lr = torch.zeros_like(momentum)
        self._neg_lr_views = [self._neg_lr.view(s) for s in shapes]

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        """One update with learning rates `lr` (M,); a member with lr 0 is left as it is.

        One `torch._foreach_*` call per stage for all parameters (as torch's SGD), the per-member
        values broadcast along the member dim.
        """
        self._neg_lr.copy_(lr).neg_()
        d_p = [p.grad for p in self.params]
        if self.decayed:
            decayed = torch._foreach_addcmul([d_p[k] for k in self.decayed], [self.params[k] for k in self.decayed],
                                             self.decay_views)
            for k, d in zip(self.decayed, decayed):
                d_p[k] = d
        if self.use_momentum:
            torch._foreach_mul_(self.buffers, self.momentum_views)
            torch._foreach_add_(self.buffers, d_p)
            d_p = self.buffers
        torch._foreach_addcmul_(self.params, d_p, self._neg_lr_views)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def reset_member(self, m: int) -> None:
        if self.buffers is not None:
            for buf in self.buffers:
                buf[m].zero_()


# ---- the group as the loop's members --------------------------------------------------------------

def member_losses(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(M,) mean cross-entropy of each member's batch, by the very call a standalone step makes.

    NOTE: one batched `cross_entropy` over (M*B, C) gives the same gradients but sums each member's
    mean in another order (last-ulp differences in the logged loss); M small calls keep the logged
    losses, and so the stored metrics, equal to a standalone run's.
    """
    return torch.stack([F.cross_entropy(o, t) for o, t in zip(out.unbind(0), y.unbind(0))])


class Stacked:
    """A group's members for `wninit.suite.train.loop`: each built as `fit` builds it, then stacked."""

    def __init__(self, cfgs: list[RunConfig], device: torch.device):
        self.cfgs, self.device, self.count = cfgs, device, len(cfgs)
        self.data = MemberData(cfgs, device)
        self.model = StackedMLP([build_member(c, self.data.in_shape, self.data.num_classes, device,
                                              lambda m=m: self.data.first_batch(m)) for m, c in enumerate(cfgs)])
        decays = [torch.tensor([weight_decay(c, kind) for c in cfgs], device=device) for kind in self.model.kinds]
        self.opt = StackedSGD(list(self.model.params), torch.tensor([c.momentum for c in cfgs], device=device),
                              decays)
        self._lr = None

    def __len__(self) -> int:
        return len(self.data)

    def train(self) -> None:
        self.model.train()

    def batches(self):
        return self.data.batches()

    def lrs(self, epoch: int) -> torch.Tensor:
        """(n, M): each member's schedule and warmup for each mini-batch of `epoch`."""
        return torch.tensor([epoch_lrs(c, epoch, len(self.data)) for c in self.cfgs], device=self.device).T

    def set_lr(self, lr: torch.Tensor) -> None:
        self._lr = lr

    def forward(self, x, y):
        out = self.model(x)
        return member_losses(out, y), (out.detach().argmax(2) == y).sum(1), y.shape[1]

    def step(self, alive: torch.Tensor) -> None:
        self.opt.step(self._lr * alive)  # a stopped member takes steps of lr 0

    def zero_grad(self) -> None:
        self.opt.zero_grad()

    def stop(self, members: list[int]) -> None:
        """Give the stopped members finite weights and no momentum, after the step their NaN gradients went
        into: from then on they take steps of lr 0 on finite values, and never produce NaN again."""
        for m in members:
            self.model.neutralize(m)
            self.opt.reset_member(m)

    def validate(self, m: int):
        return evaluate(MemberView(self.model, m), *self.data.val(m))

    def member_state(self, m: int) -> list[torch.Tensor]:
        return self.model.member_state(m)

    def load_member_state(self, m: int, state: list[torch.Tensor]) -> None:
        self.model.load_member_state(m, state)

    def test(self, m: int) -> float | None:
        return evaluate(MemberView(self.model, m), self.data.test_x, self.data.test_y)[1]


def run_group(cfgs: list[RunConfig]) -> list[RunResult]:
    """Train resolved, batchable `cfgs` of one group together; one RunResult per config, in order.

    Like `fit`, the group runs on `cfgs[0].threads` threads and gives the caller's thread count and
    global random stream back when it ends.
    """
    device = resolve_device(cfgs[0].device)
    with run_scope(cfgs[0].threads, device, cfgs[0].portable):
        started = time.perf_counter()
        members = Stacked(cfgs, device)
        records = [RunRecord() for _ in cfgs]
        train_epochs(members, cfgs, records, 0, check_interval(device))
        test_accs = test_best(members, records)
        wall_s = time.perf_counter() - started
        # fit's environment record (the same keys as a standalone run) and the size of the group
        return [record.result(c, acc, wall_s / len(cfgs), env(device, c.seed, batched=len(cfgs)))
                for c, record, acc in zip(cfgs, records, test_accs)]
