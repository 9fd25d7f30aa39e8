"""The ``tact`` command (Typer + Rich): a face that parses, calls a use-case, prints."""
