"""Teaching labs on data movement (issue 11): ``spmm-study lab`` lists them, ``spmm-study lab ID`` runs one."""
