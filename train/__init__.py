"""The training program: ``python -m train --config train/configs/<name>.py --workdir DIR``."""
