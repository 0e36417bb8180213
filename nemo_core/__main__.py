import sys

from .cli.main import main

if __name__ == "__main__":  # not when a spawned process imports this module again as __mp_main__
    sys.exit(main())
