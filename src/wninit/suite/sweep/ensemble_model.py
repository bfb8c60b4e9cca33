"""M MLPs of one architecture as one model with stacked weights, and SGD vectorised over the members.

Each hidden layer holds `v` (M, out, in), `g` (M, out) and `b` (M, out) (`w` (M, out, in) and
`b` without weight norm); the plain head holds `w` (M, C, width) and `b` (M, C). A forward pass is
one `torch.baddbmm` per layer for all members, member m reading only its own slice, so the members
never mix: member m's output and gradients are those of its standalone [`MLP`][wninit.models.mlp.MLP].
"""
from __future__ import annotations

import torch
from torch import nn

from wninit.models import MLP
from wninit.weightnorm.access import is_weight_normed, wn_g, wn_v
from wninit.weightnorm.formula import wn_weight

__all__ = ["StackedMLP", "MemberView", "StackedSGD"]


def _linears(model: MLP) -> list[nn.Linear]:
    """The hidden Linear layers (WN or plain) in forward order, then the head."""
    return [m for m in model.features if isinstance(m, nn.Linear)] + [model.head]


def _weight_norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """`g * v/||v||` per output unit of every member (docs/method.md §2.1), (M, out, in).

    The M members' rows are one (M*out, in) matrix for ATen's fused weight-norm kernel, the kernel the
    standalone WN layers run (wn_formula.wn_weight), so each row's weight and gradients are computed as there.
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
            h = torch.relu(_StackedLinear.apply(h, w, b, False))
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
