"""``python -m refeed`` (also ``accelerate launch -m refeed ...``)."""

from refeed.cli import main

if __name__ == "__main__":
    main()
