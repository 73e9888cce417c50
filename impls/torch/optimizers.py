"""The six optimizers of docs/models.md: torch.optim ("native") and the update table ("textbook").

Native configurations, each the textbook update (g includes the coupled weight decay: every
torch.optim class below adds ``weight_decay * w`` to the gradient before its update, which the
parity tests confirm):

- sgd: ``SGD(lr, weight_decay)``
- momentum: ``SGD(lr, momentum, weight_decay)``; nesterov: the same with ``nesterov=True``
- adagrad: ``Adagrad(lr, lr_decay=0, initial_accumulator_value=0, eps, weight_decay)``:
  h += g^2; w -= lr g / (sqrt(h) + eps), eps outside the square root as in the textbook
- rmsprop: ``RMSprop(lr, alpha, eps, weight_decay)`` (momentum 0, not centered): eps outside
- adam: ``Adam(lr, betas, eps, weight_decay)``: w -= (lr / (1 - b1^t)) m / (sqrt(v) /
  sqrt(1 - b2^t) + eps), the textbook update up to rounding (sqrt(v) / sqrt(c) vs sqrt(v / c))

"auto" is native for all six: with a constant learning rate every native update equals the
textbook one to rounding. Adam's ``form="eps_hat"`` (tutorial 002's and Keras' Adam, eps on the
uncorrected sqrt(v)) and AdaGrad's and RMSProp's ``form="eps_inside"`` (Keras', sqrt(h + eps))
have no torch.optim class: "auto" runs TextbookOptimizer's branch for them, "native" is refused.

One difference remains, when the learning rate CHANGES mid-run:
torch's momentum keeps the velocity in gradient units and applies the current lr to all of it,

    torch     momentum:  b = momentum b + g;       w -= lr_t b
              nesterov:  b = momentum b + g;       w -= lr_t (g + momentum b)
    textbook  momentum:  v = momentum v - lr_t g;  w += v
              nesterov:  v = momentum v - lr_t g;  w += momentum v - lr_t g

With a constant lr, v = -lr b and the two agree. After lr changes from lr_a to lr_b, torch
rescales the whole remembered velocity (steps taken at lr_a are replayed at lr_b), while the
textbook velocity keeps the past steps at the lr they were taken with: the first update after
the change differs by (lr_b - lr_a) momentum b_before (and the gap persists, decaying with
momentum). Choose implementation="textbook" for textbook behaviour under an lr schedule.
"""

from __future__ import annotations

import math

import torch

from .. import _checks
from .models import Model

__all__ = ["OPTIMIZERS", "HYPERPARAMETERS", "IMPLEMENTATIONS", "Optimizer", "TextbookOptimizer",
           "build_optimizer"]

OPTIMIZERS = tuple(_checks.OPTIMIZER_DEFAULTS)
# Each rule's hyperparameters with PyTorch's names and defaults (checked in impls/_checks.py,
# shared by the three backends); torch.optim.Adam takes beta1/beta2 as ``betas``.
HYPERPARAMETERS = _checks.OPTIMIZER_DEFAULTS
IMPLEMENTATIONS = _checks.IMPLEMENTATIONS


# ---------------------------------------------------------------------------------------------
# the textbook table with torch tensor ops


class TextbookOptimizer(torch.optim.Optimizer):
    """The update table of docs/models.md, state starting at 0; g = grad + weight_decay w.

    ``rule`` is one of OPTIMIZERS; the hyperparameters live in the param groups like
    torch.optim's, so ``param_groups[i]["lr"]`` changes take effect at the next step.
    """

    def __init__(self, params, rule: str, lr: float, momentum: float = 0.0,
                 alpha: float = 0.99, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, form: str = "textbook"):
        if rule not in OPTIMIZERS:
            raise ValueError(f"rule: got {rule!r}, expected one of {', '.join(OPTIMIZERS)}")
        form = _checks.optimizer_form(rule, form, "textbook", ())
        super().__init__(params, dict(rule=rule, lr=lr, momentum=momentum, alpha=alpha,
                                      betas=betas, eps=eps, weight_decay=weight_decay,
                                      form=form))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = getattr(self, f"_{group['rule']}")
            for w in group["params"]:
                if w.grad is not None:
                    update(w, w.grad + group["weight_decay"] * w, self.state[w], group)
        return loss

    @staticmethod
    def _zeros(state: dict, w: torch.Tensor, *names: str) -> list[torch.Tensor]:
        return [state.setdefault(name, torch.zeros_like(w)) for name in names]

    def _sgd(self, w, g, state, group):
        w.sub_(group["lr"] * g)  # w -= lr g

    def _momentum(self, w, g, state, group):
        (v,) = self._zeros(state, w, "v")
        v.mul_(group["momentum"]).sub_(group["lr"] * g)  # v = momentum v - lr g
        w.add_(v)  # w += v

    def _nesterov(self, w, g, state, group):
        (v,) = self._zeros(state, w, "v")
        v.mul_(group["momentum"]).sub_(group["lr"] * g)  # v = momentum v - lr g
        w.add_(group["momentum"] * v - group["lr"] * g)  # w += momentum v - lr g

    @staticmethod
    def _denominator(h, group):
        # sqrt(h) + eps; form "eps_inside" (Keras' Adagrad and RMSprop): sqrt(h + eps)
        if group["form"] == "eps_inside":
            return (h + group["eps"]).sqrt()
        return h.sqrt() + group["eps"]

    def _adagrad(self, w, g, state, group):
        (h,) = self._zeros(state, w, "h")
        h.add_(g * g)  # h += g^2
        w.sub_(group["lr"] * g / self._denominator(h, group))  # w -= lr g / (sqrt(h) + eps)

    def _rmsprop(self, w, g, state, group):
        (h,) = self._zeros(state, w, "h")
        alpha = group["alpha"]
        h.mul_(alpha).add_((1 - alpha) * g * g)  # h = alpha h + (1 - alpha) g^2
        w.sub_(group["lr"] * g / self._denominator(h, group))  # w -= lr g / (sqrt(h) + eps)

    def _adam(self, w, g, state, group):
        m, v = self._zeros(state, w, "m", "v")
        b1, b2 = group["betas"]
        state["t"] = t = state.get("t", 0) + 1
        if group["form"] == "eps_hat":
            # m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v); lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);
            # w -= lr_t m / (sqrt(v) + eps): eps on the UNcorrected sqrt(v) (002, Keras)
            m.add_((1 - b1) * (g - m))
            v.add_((1 - b2) * (g * g - v))
            lr_t = group["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            w.sub_(m * lr_t / (v.sqrt() + group["eps"]))
            return
        m.mul_(b1).add_((1 - b1) * g)  # m = b1 m + (1 - b1) g
        v.mul_(b2).add_((1 - b2) * g * g)  # v = b2 v + (1 - b2) g^2
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w.sub_(group["lr"] * m_hat / (v_hat.sqrt() + group["eps"]))


# ---------------------------------------------------------------------------------------------
# building one


# The forms torch.optim's classes compute (the textbook's, for every rule; no eps-hat Adam, no
# eps-inside AdaGrad or RMSProp).
_NATIVE_FORMS = ("textbook",)


def _native(name: str, params, lr: float, hyper: dict) -> torch.optim.Optimizer:
    """torch.optim's optimizer ``name``, configured as the textbook update (module docstring)."""
    wd = hyper["weight_decay"]
    if name in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=hyper.get("momentum", 0.0),
                               dampening=0.0, nesterov=name == "nesterov", weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, lr_decay=0.0, weight_decay=wd,
                                   initial_accumulator_value=0.0, eps=hyper["eps"])
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=hyper["alpha"], eps=hyper["eps"],
                                   weight_decay=wd, momentum=0.0, centered=False)
    return torch.optim.Adam(params, lr=lr, betas=hyper["betas"], eps=hyper["eps"],
                            weight_decay=wd, amsgrad=False)


def _params(params: object) -> dict[str, torch.Tensor]:
    """A dict name -> float leaf tensor that requires grad (what torch.optim can update)."""
    for key, w in params.items():
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"params[{key!r}]: got {type(w).__name__}, expected a torch.Tensor")
        if w.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"params[{key!r}]: got dtype {str(w.dtype).removeprefix('torch.')}, "
                            "expected float32 or float64")
        if not (w.is_leaf and w.requires_grad):
            raise ValueError(f"params[{key!r}]: got a tensor with is_leaf={w.is_leaf} and "
                             f"requires_grad={w.requires_grad}, expected a leaf tensor with "
                             "requires_grad=True (torch.tensor(..., requires_grad=True))")
    if len({id(w) for w in params.values()}) != len(params):
        raise ValueError("params: got the same tensor under two names, expected one name each")
    return params


def _grad(key: str, g: object, w: torch.Tensor) -> torch.Tensor:
    """grads[key] as given to step(grads): a tensor of w's shape and dtype (not one that
    needs grad itself: it becomes w.grad, which torch.optim reads without a graph)."""
    if not isinstance(g, torch.Tensor):
        raise TypeError(f"grads[{key!r}]: got {type(g).__name__}, expected a torch.Tensor")
    if g.dtype != w.dtype:
        raise TypeError(f"grads[{key!r}]: got dtype {str(g.dtype).removeprefix('torch.')}, "
                        f"expected {str(w.dtype).removeprefix('torch.')} to match "
                        f"params[{key!r}]")
    if g.shape != w.shape:
        raise ValueError(f"grads[{key!r}]: got shape {tuple(g.shape)}, expected "
                         f"{tuple(w.shape)} (the shape of params[{key!r}])")
    return g.detach()


class Optimizer:
    """What build_optimizer returns: a torch optimizer over a model's parameters or a dict.

    ``torch_optimizer`` is the torch.optim.Optimizer that updates the tensors (native or
    TextbookOptimizer); ``params`` the name -> tensor dict it updates (a Model's
    named_parameters, or the dict given); ``lr`` reads and sets the learning rate of all its
    param groups, taking effect at the next step.

    Two ways to step, the first the same in the three backends:

        opt.step(grads)    # grads: a dict name -> tensor with the keys of params; each
                           # becomes that parameter's .grad (replacing it), then one update
        opt.step()         # torch's own way: one update from the .grad that backward() left
    """

    def __init__(self, name: str, implementation: str, torch_optimizer: torch.optim.Optimizer,
                 hyper: dict, params: dict[str, torch.Tensor] | None = None,
                 form: str = "textbook"):
        self.name = name
        self.implementation = implementation  # "native" or "textbook" ("auto" resolved)
        self.form = form  # "textbook", or adam's "eps_hat"
        self.torch_optimizer = torch_optimizer
        self.hyper = hyper  # every hyperparameter but lr, defaults filled in
        self.params = {} if params is None else params

    @property
    def lr(self) -> float:
        return self.torch_optimizer.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        value = _checks.learning_rate(value)
        for group in self.torch_optimizer.param_groups:
            group["lr"] = value

    def zero_grad(self) -> None:
        self.torch_optimizer.zero_grad()

    def step(self, grads: dict[str, torch.Tensor] | None = None) -> None:
        """One update: from ``grads`` (name -> tensor, the keys of params) if given, each set
        as the parameter's .grad first; otherwise from the parameters' .grad as they are."""
        if grads is not None:
            _checks.optimizer_grads(grads, self.params)
            checked = {key: _grad(key, grads[key], w) for key, w in self.params.items()}
            for key, w in self.params.items():
                w.grad = checked[key].clone()
        self.torch_optimizer.step()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return (f"Optimizer({self.name!r}, lr={self.lr!r}, "
                f"implementation={self.implementation!r}, form={self.form!r}, {args})")


def build_optimizer(name: str, params: Model | dict[str, torch.Tensor], lr: float = 0.01,
                    implementation: str = "auto", form: str = "textbook",
                    **hyper) -> Optimizer:
    """Optimizer ``name`` (one of OPTIMIZERS) over a Model's parameters, or over a plain dict
    name -> float leaf tensor with requires_grad; ``opt.step(grads)`` as in every backend, or
    ``opt.step()`` after ``backward()`` (see Optimizer).

    implementation: "native" (torch.optim), "textbook" (TextbookOptimizer) or "auto" (native:
    the two agree unless lr changes mid-run with momentum/nesterov, see the module docstring).
    form: "textbook", or for adam "eps_hat" (tutorial 002's and Keras' Adam), for adagrad and
    rmsprop "eps_inside" (Keras'), which torch.optim has no class for: "auto" gives
    TextbookOptimizer, "native" is refused.
    """
    checked = _checks.optimizer_params(params, Model, "float leaf tensor with requires_grad")
    lr, hyper = _checks.optimizer(name, lr, implementation, hyper)
    form = _checks.optimizer_form(name, form, implementation, _NATIVE_FORMS)
    named = dict(params.named_parameters()) if checked is None else _params(checked)
    if name == "adam":
        hyper["betas"] = (hyper.pop("beta1"), hyper.pop("beta2"))
    if implementation == "auto":
        resolved = "native" if form in _NATIVE_FORMS else "textbook"
    else:
        resolved = implementation
    tensors = list(named.values())
    if resolved == "native":
        torch_optimizer = _native(name, tensors, lr, hyper)
    else:
        torch_optimizer = TextbookOptimizer(tensors, name, lr, form=form, **hyper)
    return Optimizer(name, resolved, torch_optimizer, hyper, named, form)
