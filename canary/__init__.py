"""canary: a progressive delivery controller. See docs/ (docs/architecture.md first)."""

__version__ = "0.1.0"
