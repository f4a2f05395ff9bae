"""Benchmarks of issue 9: throughput, log scale, client cost and the live view.

``python -m benchmarks`` (``--short`` for the quick version CI runs) starts its own
simulators on loopback and prints one line per figure: ``name value target PASS/FAIL``.
Each figure is measured in this one run, on this machine; absolute times vary from
machine to machine, so throughput is given as a ratio to the ideal.
"""
