from spmm_study.cli import main

main()
