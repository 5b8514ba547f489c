"""Every sampling method of the project, one module each, registered by name (``blend.methods.registry``).

``get_method(name)`` returns the :class:`Method` that validates a spec of that method, gives its per-step rule,
label, display name, cost, figure style and ``run_DB.py`` specs; ``register_method`` adds one (a test or a
script may register its own). Registration order is the table order. Importing loads no torch.
"""

from blend.methods.registry import (
    REGISTRY,
    Method,
    PlanContext,
    baseline_names,
    default_methods,
    get_method,
    lam_method,
    list_methods,
    method_names,
    reference_method,
    register_method,
    unregister_method,
)

# isort: split
# the built-in methods, in table order (registration order)
from blend.methods import base, single, mpa, kla, mpa_ls, soup, hybrid, bon, code, guided  # noqa: F401,I001

__all__ = ["REGISTRY", "Method", "PlanContext", "baseline_names", "default_methods", "get_method", "lam_method", "list_methods",
           "method_names", "reference_method", "register_method", "unregister_method"]
