"""Which adapter the UNet runs: one at a time, none (the pretrained model), or one per batch row.

Switching touches only PEFT's per-layer flags, never the weights, so it is exact: with every adapter
disabled the UNet is bit for bit the pretrained one. It is also cheap, and does not walk the UNet:

* the LoRA layers and, per adapter, which of them hold it are indexed once per UNet (the index is
  dropped by :func:`clear_cache`, which ``diffusion.lora.add_lora`` calls);
* the flags are written straight into each layer's ``__dict__`` (``nn.Module.__setattr__`` costs
  several µs per call, and SD 1.5 has 128 LoRA layers per adapter);
* :func:`activate` remembers what it last set and returns at once when asked for the same model
  again, after checking one sentinel layer, so that a change made behind its back (PEFT's
  ``set_adapter``/``enable_adapters``, :func:`routed`) is noticed and the flags are rewritten.

Measured by ``scripts/bench_blend.py`` (``*_switch_us`` in its JSON; docs/performance.md): on the
SD-1.5-sized UNet (128 LoRA layers per adapter, 4 adapters) a switch went from 7.4 ms to 0.23 ms, and a
repeated activation of the same adapter from 9.2 ms to 0.5 µs (one CPU thread, heavily loaded machine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer

from diffusion.guidance import BASE  # the pretrained model: every adapter disabled

_INDEX = "_db_lora_index"  # attribute of the UNet holding the _Index
_ROUTED = object()  # marker: the last writer was routed(); flags are in an unknown per-layer state


def held_adapters(layer: BaseTunerLayer) -> set[str]:
    """Names of the adapters a PEFT layer holds, for any tuner (LoRA/DoRA ``lora_A``, LoHa ``hada_*``, LoKr ``lokr_*``)."""
    return {n for attr in layer.adapter_layer_names for n in getattr(layer, attr, {})}


class _Index:
    """The PEFT layers of one UNet (LoRA, DoRA, LoHa, LoKr …) and, per adapter name, each layer's active list."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.layers: list[BaseTunerLayer] = [m for m in unet.modules() if isinstance(m, BaseTunerLayer)]
        held = [held_adapters(layer) for layer in self.layers]
        names = {n for h in held for n in h}
        # PEFT's mixed-batch path (``routed``) covers plain LoRA layers only (no DoRA, LoHa or LoKr)
        self.mixed_batch = all(isinstance(layer, LoraLayer) and not any(layer.use_dora.values())
                               for layer in self.layers)
        # for each adapter, the value of ``_active_adapter`` each layer gets (a fresh list per layer, as PEFT does)
        self.plans: dict[str, list[tuple[dict, list[str]]]] = {
            n: [(layer.__dict__, [n] if n in h else []) for layer, h in zip(self.layers, held)] for n in names}
        self.dicts = [layer.__dict__ for layer in self.layers]
        self.current: object = None  # the model last set by activate(); None = unknown

    def sentinel_ok(self, name: str) -> bool:
        """Does the first layer still hold the flags activate(name) wrote?"""
        if not self.dicts:
            return True
        d = self.dicts[0]
        if name == BASE:
            return d.get("_disable_adapters") is True
        return d.get("_disable_adapters") is False and d.get("_active_adapter") == self.plans[name][0][1]


def _index(unet: torch.nn.Module) -> _Index:
    idx = unet.__dict__.get(_INDEX)
    if idx is None or not idx.layers:
        idx = _Index(unet)
        unet.__dict__[_INDEX] = idx
    return idx


def lora_layers(unet: torch.nn.Module) -> list[BaseTunerLayer]:
    """The UNet's PEFT layers, in module order (indexed once; see :func:`clear_cache`)."""
    return _index(unet).layers


def mixed_batch_ok(unet: torch.nn.Module) -> bool:
    """Can :func:`routed` give rows different adapters? Only when every PEFT layer is a plain LoRA (no DoRA,
    LoHa, LoKr: PEFT's mixed-batch forward does not cover them; they run one adapter per call)."""
    return _index(unet).mixed_batch


def clear_cache(unet: torch.nn.Module) -> None:
    """Forget the layer index (call after adding or deleting adapters; ``add_lora`` does)."""
    unet.__dict__.pop(_INDEX, None)
    unet.__dict__.pop("_db_lora_layers", None)  # the index of earlier versions


def adapters_in(unet: torch.nn.Module) -> list[str]:
    """Names of the adapters held by at least one LoRA layer."""
    return sorted(_index(unet).plans)


def activate(unet: torch.nn.Module, name: str | None) -> None:
    """Make ``name`` the only active adapter; ``None`` or ``BASE`` disables every adapter.

    Sets PEFT's per-layer flags directly (peft 0.21): ``set_adapter``/``enable_adapters`` would also
    flip ``requires_grad`` of the adapter weights, which a trainer must control itself.
    """
    idx = _index(unet)
    name = BASE if name is None else name
    if idx.current == name and idx.sentinel_ok(name):
        return
    if name == BASE:
        for d in idx.dicts:
            d["_disable_adapters"] = True
    else:
        plan = idx.plans.get(name)
        if plan is None:
            raise KeyError(f"the UNet has no adapter named {name!r}; it has {sorted(idx.plans)}")
        for d, active in plan:
            d["_disable_adapters"] = False
            d["_active_adapter"] = list(active)
    idx.current = name


@contextlib.contextmanager
def routed(unet: torch.nn.Module, row_adapters: Sequence[str]) -> Iterator[None]:
    """Run one forward with a different adapter per batch row (``BASE`` = pretrained).

    Registers a forward pre-hook on every LoRA layer that passes ``adapter_names`` to PEFT's
    mixed-batch path. ``row_adapters`` must list one name per row of the batch the UNet sees.
    """
    names = list(row_adapters)

    def hook(_module, args, kwargs):
        kwargs["adapter_names"] = names
        return args, kwargs

    idx = _index(unet)
    idx.current = _ROUTED
    for d in idx.dicts:
        d["_disable_adapters"] = False
    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in idx.layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class FoldedAdapter:
    """At most one adapter's ΔW folded into its layers' base weights, undone bit for bit.

    A rewarded soup is one LoRA of rank Σ r_i (``blend.soup``); run as a LoRA it pays every LoRA layer's
    extra matmuls on every call. Folded in (W + ΔW with PEFT's own ``get_delta_weight``, so conv layers,
    ``fan_in_fan_out`` and the scaling are PEFT's), the UNet with every adapter disabled computes that
    adapter's model at the base model's cost; equal to the LoRA path up to float rounding.

    :meth:`fold` gives each base weight a new tensor W + ΔW and keeps the original tensor itself;
    :meth:`restore` puts the original back (no copy, no arithmetic: subtracting ΔW again would not return
    it exactly). Folding another adapter restores first. Cost of a fold: one B·A product and one add per
    layer holding the adapter; memory: one extra copy of those layers' weights until :meth:`restore`.
    """

    def __init__(self, unet: torch.nn.Module) -> None:
        self.unet = unet
        self.name: str | None = None
        self._saved: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # (base weight, its original tensor)

    @torch.no_grad()
    def fold(self, name: str) -> None:
        """Fold ``name`` into the base weights and disable every adapter (a no-op if it is folded already)."""
        if self.name != name:
            self.restore()
            layers = [layer for layer in _index(self.unet).layers if name in getattr(layer, "lora_A", {})]
            if not layers:
                raise KeyError(f"the UNet has no adapter named {name!r}; it has {adapters_in(self.unet)}")
            try:
                for layer in layers:
                    weight = layer.get_base_layer().weight
                    folded = _plus_delta(layer, name, weight)
                    self._saved.append((weight, weight.data))
                    weight.data = folded
            except BaseException:
                self.restore()
                raise
            self.name = name
        activate(self.unet, BASE)

    @torch.no_grad()
    def restore(self) -> None:
        """Put the original base weights back (the very tensors); nothing to do when no adapter is folded."""
        for weight, original in self._saved:
            weight.data = original
        self._saved, self.name = [], None


def _plus_delta(layer: LoraLayer, name: str, weight: torch.Tensor) -> torch.Tensor:
    """W + ΔW of one layer as a new tensor: one ``addmm`` for a plain linear layer (one pass over W instead of
    PEFT's three: B·A, the scaling, the add), PEFT's ``get_delta_weight`` for every other case."""
    if getattr(layer, "lora_bias", {}).get(name) or getattr(layer, "use_dora", {}).get(name):
        raise ValueError(f"adapter {name!r} has a LoRA bias or DoRA magnitude, which folding does not cover; "
                         "run it as a LoRA (not as a soup)")
    a, b = layer.lora_A[name].weight, layer.lora_B[name].weight
    if isinstance(layer.get_base_layer(), torch.nn.Linear) and not getattr(layer, "fan_in_fan_out", False) \
            and a.dtype == b.dtype == weight.dtype and a.ndim == 2:
        return torch.addmm(weight, b, a, alpha=layer.scaling[name])
    return layer.get_delta_weight(name).to(weight.dtype).add_(weight)
