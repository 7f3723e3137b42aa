import sys

from synth_platform.cli import main

sys.exit(main())
