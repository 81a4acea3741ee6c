import sys


class PipelineError(Exception):
    """A problem the user can fix: printed as one line, the stage exits non-zero."""


def run_stage(main):
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit status 1."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
