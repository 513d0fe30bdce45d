"""Start Image Batch Console: `python app.py --help` lists the options."""

import sys

from console.cli import main

if __name__ == "__main__":
    sys.exit(main())
