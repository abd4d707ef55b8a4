"""What a model is made of: parameter and FLOP counts, layer tables.

Computed from a freshly built model when shown, never stored with a
result, so this module stays out of the results key.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _probe(model: nn.Module):
    """Run one blank image through `model` in evaluation mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 28, 28,
                              device=next(model.parameters()).device))
    finally:
        model.train(was_training)


def forward_flops(model: nn.Module) -> int:
    """Floating-point operations of one forward pass of one image
    (multiply and add counted separately; matmuls and convolutions only)."""
    with FlopCounterMode(display=False) as counter:
        _probe(model)
    return int(counter.get_total_flops())


def torch_name(module: nn.Module) -> str:
    """The name of the PyTorch layer a module is (`Conv2d` for
    `models.OneChannelConv`, a faster way to compute one); a module
    defined elsewhere keeps its own name."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch.nn") and cls is not nn.Module:
            return cls.__name__
    return type(module).__name__


def layer_table(model: nn.Module, group=()) -> list[dict]:
    """One row per leaf layer (name, output shape, parameters); a module
    of a type in `group` (a residual block, say) is one row."""
    rows, hooks = [], []

    def hook(module, _inputs, output):
        rows.append({"layer": torch_name(module),
                     "output": tuple(output.shape[1:]),
                     "params": n_params(module)})

    def visit(module):
        if isinstance(module, group) or not list(module.children()):
            hooks.append(module.register_forward_hook(hook))
            return
        for child in module.children():
            visit(child)

    visit(model)
    try:
        _probe(model)
    finally:
        for h in hooks:
            h.remove()
    return rows


def merge_free(rows: list[dict]) -> list[dict]:
    """Fold each parameter-free layer (an activation, a reshape) into the
    row of the layer before it ("Linear + ReLU"), or into the next one if
    it comes first, so that a layer table has one row per learned layer."""
    out, waiting = [], []
    for r in rows:
        if r["params"] == 0 and out:
            last = out[-1]
            out[-1] = {**last, "layer": f"{last['layer']} + {r['layer']}",
                       "output": r["output"]}
        elif r["params"] == 0:
            waiting.append(r["layer"])
        else:
            out.append({**r, "layer": " + ".join([*waiting, r["layer"]])})
            waiting = []
    return out


WEIGHTED = ("Linear", "Conv2d", "ConvTranspose2d")


def summary(model: nn.Module) -> dict:
    """What a side-by-side table of designs shows: weight layers,
    parameters, the share of them in fully connected layers, and the
    forward FLOPs of one image."""
    rows = layer_table(model)
    params = n_params(model)
    linear = sum(r["params"] for r in rows if r["layer"] == "Linear")
    return {"weight_layers": sum(r["layer"] in WEIGHTED for r in rows),
            "params": params, "linear_params": linear,
            "linear_share": linear / params,
            "flops": forward_flops(model)}


def layer_rows(model: nn.Module, group=()) -> list[list[str]]:
    """A model's layer table as printed: one row per learned layer with
    the parameter-free layers that follow it, output shape, parameters."""
    return [[r["layer"], "×".join(map(str, r["output"])), f"{r['params']:,}"]
            for r in merge_free(layer_table(model, group))]
