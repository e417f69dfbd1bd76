"""`python -m dbops` and the `dbops` console script: the command line, with the cyclic garbage
collector tuned for a short command before anything is imported."""

import gc


def run() -> None:
    # A command allocates many short-lived objects that form no cycles (parse trees, rows): the
    # default threshold (700) runs the collector over a hundred times in a long migration run,
    # each time over every module object imported so far. A larger first generation, and the
    # start-up objects frozen out of later collections, keep cyclic garbage collected at far
    # less cost (mypy does the same).
    gc.set_threshold(50_000, 10, 10)
    from dbops.cli import main

    gc.freeze()
    main()


if __name__ == "__main__":
    run()
