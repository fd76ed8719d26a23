"""``python -m fcap`` runs the CLI."""

from fcap.cli import main

main()
