import sys

from stackgan.cli import main

sys.exit(main())
