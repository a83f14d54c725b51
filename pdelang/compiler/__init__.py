"""The compiler layer: spec → AST → symbolic IR → step program → analysis → discrete IR →
Python source (``driver`` lists the stages).  Imports nothing above it."""
