"""The tools around the jobs: ``bench`` (each path against a named baseline; ``bench.gpu``: every
GPU figure), ``doctor`` and its ``checks``, ``demo``, ``synth`` (synthetic motion datasets),
``sweep`` and ``plot``, and the VideoMAE-style ``baselines`` the benches measure against (decord:
the dev extra). The jobs never import them."""
