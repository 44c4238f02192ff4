"""The GPU page's acceptance section is generated from the committed reference files (experiments/device_docs.py
render): the committed page must be exactly what the script writes, so a number in it always has a row behind
it. And the docs' GPU command extractor finds what the acceptance run executes."""

import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("device_docs", ROOT / "experiments" / "device_docs.py")
device_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_docs)


def test_gpu_page_acceptance_section_is_generated(tmp_path):
    page = tmp_path / "gpu.md"
    shutil.copy(ROOT / "docs" / "gpu.md", page)
    device_docs.render(page)
    assert page.read_text(encoding="utf-8") == (ROOT / "docs" / "gpu.md").read_text(encoding="utf-8"), \
        "docs/gpu.md differs from what experiments/device_docs.py render writes: run it and commit"
    assert "<!-- device-acceptance:start -->" in page.read_text(encoding="utf-8")


def test_doc_commands_and_gpu_filter(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text spmm-study run\n```\nspmm-study run --device gpu -v auto  # note\n"
                  "spmm-study run -v tiled \\\n  --n 64\n$ other\nspmm-study compare -v gpu.csr.auto,gpu.csr.sputnik\n```\n")
    cmds = device_docs.doc_commands([md])
    assert cmds == ["spmm-study run --device gpu -v auto", "spmm-study run -v tiled --n 64",
                    "spmm-study compare -v gpu.csr.auto,gpu.csr.sputnik"]
    assert [device_docs.is_gpu(c) for c in cmds] == [True, False, True]
