"""The doors: SMTP, HTTP uploads and tus. Each ends in ``Acceptor.accept``."""
