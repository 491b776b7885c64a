"""``python -m peaceland.cli``."""

from peaceland.cli.app import main

main()
