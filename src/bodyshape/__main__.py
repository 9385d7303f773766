"""``python -m bodyshape``: the ``bodyshape`` command, also what ``torchrun -m bodyshape``
starts in each process (docs/TRAINING.md, *Several processes*)."""

from bodyshape.cli import main

if __name__ == "__main__":
    main(prog_name="bodyshape")
