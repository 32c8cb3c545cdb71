"""``python -m vigil.cli`` runs the command line."""

from vigil.cli import main

main()
