import sys

from ppvi.cli import main

sys.exit(main())
