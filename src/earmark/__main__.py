"""``python -m earmark``: the same command line as the ``earmark`` script."""

from earmark.cli import main

if __name__ == "__main__":
    main()
