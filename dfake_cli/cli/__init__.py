"""The Typer CLI: a thin layer. Each subcommand parses options and calls a plain function."""
