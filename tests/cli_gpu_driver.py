"""Drive ``spmm-study`` commands in one interpreter, as a user types them (``main(argv)``: the same entry point
as the console script), and print each command's exit code. Run by tests/test_cli_gpu.py in a subprocess with
NUMBA_ENABLE_CUDASIM=1, so the simulator is on before numba.cuda is first imported and the CPU tests of the
same pytest run never see it; one interpreter for all commands saves the import of numba-cuda per command.

Usage: python tests/cli_gpu_driver.py COMMANDS.json  (a JSON list of argv lists); prints ``RC <i> <code>``.
"""

import json
import sys

from spmm_study.cli import main


def run_all(commands: list[list[str]]) -> None:
    for i, argv in enumerate(commands):
        print(f"=== {i}: spmm-study {' '.join(argv)}", flush=True)
        try:
            main(argv)
            code = 0
        except SystemExit as exc:  # typer.Exit / sys.exit inside main
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        print(f"RC {i} {code}", flush=True)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        run_all(json.load(f))
