"""``python -m bodyshape.cli``: the same as the ``bodyshape`` console script."""

from bodyshape.cli import main

main()
