"""Ablation harness: measure what each stabilizer of a compiled stepper buys.

A compiled stepper is a Transformer encoder read as a PDE integrator.  ``pdelang ablate``
compiles one stepper per combination of overrides (residual on/off, layernorm / rmsnorm /
none, ...) and uses this package to measure, per variant,

* **drift** (:mod:`pdelang.lab.ablation.drift`): how far the per-layer states move away from a
  reference variant, and whether the tokens collapse onto their mean (rank collapse,
  Dong et al. 2021);
* **training dynamics** (:mod:`pdelang.lab.ablation.train`): loss, gradient norm, update norm
  and activation size per step on a small supervised task
  (:mod:`pdelang.lab.ablation.tasks`), with early stopping on divergence;

and writes ``results.json``, ``report.md`` and PNG plots (:mod:`pdelang.lab.ablation.report`).
The thesis under test: without residual connections representations drift (rank
collapse); without normalization training explodes.
"""
