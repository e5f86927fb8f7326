"""Statistical analysis of label cubes: tests, risk, mitigation, Bayesian models, agreement.

Submodules are imported on demand (``from hackrisk.analysis import risk``); numpy kernels live in
``_kernels`` and take arrays with ``axis=``.
"""
