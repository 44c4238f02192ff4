"""The labs, in order: ``spmm-study lab`` lists them, ``spmm-study lab ID`` runs one."""

from __future__ import annotations

from importlib import resources

from spmm_study.errors import ParamError

MODULES = ("lab1_loop_order", "lab2_tiling", "lab3_formats", "lab4_registers", "lab5_balance", "lab6_roofline",
           "lab7_gpu_memory", "lab8_gpu_balance", "lab9_conv")


def all_labs() -> list:
    import importlib

    return [importlib.import_module(f"spmm_study.labs.{m}").LAB for m in MODULES]


def get(lab_id: str | int):
    text = str(lab_id).strip().lower().removeprefix("lab")
    labs = all_labs()
    for lab in labs:
        if text == str(lab.id):
            return lab
    raise ParamError(f"unknown lab {lab_id!r}; the labs are {', '.join(str(l.id) for l in labs)} (see 'spmm-study lab')")


ANSWERS = "## Answers (instructor)"


def handout(lab, answers: bool = False) -> str:
    """The lab's handout (Markdown), shipped as package data. The student's copy stops before the
    instructor's section (the figures measured when the lab was written); ``answers`` keeps it."""
    try:
        text = resources.files("spmm_study.labs").joinpath("handouts", lab.handout_name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise ParamError(f"lab {lab.id}: its handout {lab.handout_name} is missing from the package ({exc})") from None
    return text if answers else text.split(ANSWERS, 1)[0].rstrip("\n") + "\n"
