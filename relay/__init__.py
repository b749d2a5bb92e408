"""The relay: take media in over SMTP and HTTP, process it, host it, pass links on."""

__version__ = "0.1.0"
