"""CLI subcommands: one dataclass per command, each with a ``run()`` method."""
