"""canary: a progressive delivery controller. See docs/ and ../shared/DESIGN.md."""

__version__ = "0.1.0"
