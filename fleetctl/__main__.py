"""The ``fleetctl`` command (and ``python -m fleetctl``).

Loading the command line builds a large heap of objects that live as long as the process
(typer, rich, paramiko, requests, docker, fleetctl's own): Python's cyclic garbage
collector would walk it over and over, while it loads and while a rollout runs (a sixth
of the controller's CPU in a deploy). So the collector waits while it loads, and what
loading built is frozen (:func:`gc.freeze`: never collected, never walked again).
"""

import gc


def run() -> None:
    """Load the command line with the collector paused, freeze what loading built, run."""
    gc.disable()
    from fleetctl.cli import main

    gc.freeze()
    gc.enable()
    main()


if __name__ == "__main__":
    run()
