"""``python -m spmm_study``: the same CLI as the ``spmm-study`` script (useful where the script is not on PATH)."""

from spmm_study.cli import main

main()
