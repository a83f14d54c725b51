"""Studies that test published claims with pdelang (one module per study)."""
