"""Interpreters of the step program that run it: the torch runtime (``builder``: compile and
import a generated module; ``accelerate``; ``diagnose``) and the NumPy oracle (float64,
independent of the printer).  The third interpreter, the symbolic stability machine, is a
stage of the compiler (:mod:`pdelang.compiler.analysis.stability`).  Imports only the
compiler."""
