"""The tuner's version, recorded in every policy it writes (bump when decisions change for the same input)."""

TUNER_VERSION = "0.1.0"
