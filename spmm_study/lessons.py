"""``spmm-study show ID``: a variant's lesson, its module docstring, with the facts the registry holds."""

from __future__ import annotations

import inspect


def lesson(name: str, device: str = "cpu") -> str:
    from spmm_study import registry

    v = registry.get(name, device=device)
    module = inspect.getmodule(v.build)
    doc = inspect.getdoc(module) if module is not None else None
    head = [f"{v.id}  (rung {v.rung}, loop order {v.loop_order})"]
    if v.params:
        head.append("params: " + ", ".join(f"{p.name}={p.default}" for p in v.params))
    if module is not None and getattr(module, "__file__", None):
        head.append(f"source: spmm_study/{module.__name__.split('spmm_study.', 1)[-1].replace('.', '/')}.py")
    reason = v.unavailable_reason()
    if reason:
        head.append(f"unavailable here: {reason}")
    body = doc or v.doc or "(this variant has no lesson text)"
    if v.doc and doc and v.doc.strip() not in doc:
        body = v.doc.strip() + "\n\n" + doc
    return "\n".join(head) + "\n\n" + body.rstrip() + "\n"
