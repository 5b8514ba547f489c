"""``single``: one adapter's ε (1 UNet evaluation per step); with ``role="oracle"`` a MORL oracle's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from blend.methods.registry import Method, PlanContext, register_method

if TYPE_CHECKING:
    from blend.spec import BlendSpec


@register_method
class Single(Method):
    name = "single"
    display_name = "Single adapter"
    legend = "Single adapters"
    style = ("#999999", "s", "none")
    needs_weights = False
    weighted_objective = False
    default_min_adapters, default_rank = 1, 1
    point_label = "name"

    def validate(self, spec: BlendSpec) -> None:
        from blend.eps import BASE

        if spec.rewards or spec.options:
            super().validate(spec)  # the shared message
        if BASE in spec.adapters:
            raise ValueError(f"{BASE!r} is reserved for the pretrained model; rename the adapter")
        if len(spec.adapters) != 1:
            raise ValueError(f"method {self.name!r} takes exactly one adapter, got {len(spec.adapters)}")
        object.__setattr__(spec, "weights", (1.0,))  # BlendSpec is frozen; its one weight is 1 by definition
        self.check_lam(spec)

    def coefficients(self, spec: BlendSpec) -> dict[str, float]:
        return {spec.adapters[0]: 1.0}

    def label(self, spec: BlendSpec) -> str:
        return f"{spec.role or self.name}_{spec.adapters[0]}"

    def display(self, spec: BlendSpec) -> str:
        if spec.role == ORACLE_ROLE:
            tag = f" ({spec.extra['tag']})" if spec.extra.get("tag") else ""
            return f"MORL oracle {spec.extra.get('target', spec.adapters[0])}{tag}"
        return f"{self.display_name} {spec.adapters[0]}"

    def build_specs(self, ctx: PlanContext) -> list[BlendSpec]:
        from blend.spec import BlendSpec

        return [BlendSpec(self.name, (a,)) for a in ctx.adapters]


ORACLE_ROLE = "oracle"


@register_method
class Oracle(Method):
    """``--methods oracle``: the MORL oracles of ``--oracle W=PATH``, sampled as ``single`` with role oracle."""

    name = ORACLE_ROLE
    display_name = "MORL oracle"
    style = ("#882255", "P", "none")
    plan_only = True
    needs_weights = False
    weighted_objective = False
    default_min_adapters, default_rank = 0, 9
    point_label = "name"
    big_marker = True

    def validate(self, spec: BlendSpec) -> None:
        raise ValueError(f"{self.name!r} is a --methods entry; its specs are method {Single.name!r} with "
                         f"role={ORACLE_ROLE!r}")

    def build_specs(self, ctx: PlanContext) -> list[BlendSpec]:
        return list(ctx.oracle_specs)

    @staticmethod
    def spec(adapter: str, target: str, tag: str = "") -> BlendSpec:
        """The spec of one MORL oracle adapter trained on the weighted reward ``target``; ``tag`` tells apart several
        oracles of one target (e.g. their training seeds) in tables."""
        from blend.spec import BlendSpec

        extra = {"target": target, **({"tag": tag} if tag else {})}
        return BlendSpec(Single.name, (adapter,), role=ORACLE_ROLE, extra=extra)


def family(method: str, role: str = "") -> str:
    """The figure family of a result row: the oracle for role oracle, else its method."""
    return ORACLE_ROLE if role == ORACLE_ROLE else method
