"""What a build reads from the user: calibration, golden and evaluation data (``data``), the
user's entry points (``entrypoints``), and the trace of the files they read (``trace``), which
lets a rebuild skip them when nothing changed."""
