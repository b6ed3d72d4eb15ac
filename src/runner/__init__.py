"""runner: declarative fine-tuning experiments (model x head x overrides x freezing)."""

__version__ = "0.1.0"
