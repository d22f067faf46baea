"""``python -m energyscope`` runs the command line."""
from energyscope.cli import main

raise SystemExit(main())
