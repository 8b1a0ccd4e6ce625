"""``python -m repdyn.distill``: see :mod:`repdyn.distill.cli`."""

from repdyn.distill.cli import main

if __name__ == "__main__":
    main()
