"""Evaluation: in-domain classifiers, FID/KID, diversity, memorisation, R-precision, D probes, reports.

Every metric takes tensors (images in [-1, 1], feature matrices) or a *sampler*
(``sampler(name, n, seed) -> images [n, C, H, W] in [-1, 1]``), so each one can be tested
on its own; :mod:`stackgan.metrics.report` wires them to trained runs.
"""
