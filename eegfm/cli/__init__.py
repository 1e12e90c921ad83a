"""Command-line interface: ``eegfm <command>`` (one file per command)."""
