"""The lab: reference Transformers, validation, information, ablation, the phase study, the
claim studies and the property-testing library.  Imports the compiler and the
interpreters, never the CLI."""
