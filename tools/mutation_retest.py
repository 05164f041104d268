#!/usr/bin/env python3
"""Run the surviving mutants of a cosmic-ray session again, against the tests as they are now, and record their new
outcomes in the session (used by ``tools/mutation.sh -r``).

A run takes the better part of an hour; the tests written for its survivors need not wait for the next one. Only
survivors are run again: a mutant once killed stays killed by tests that only grow. Like ``cosmic-ray exec``, this
mutates the module in place, so it runs in a copy of the tree (mutation.sh makes one).

    python tools/mutation_retest.py SESSION.sqlite TIMEOUT TEST-COMMAND    # prints each survivor's new outcome
"""
from __future__ import annotations

import sys

from cosmic_ray.mutating import mutate_and_test
from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import TestOutcome


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    session, timeout, test_command = argv[0], float(argv[1]), argv[2]
    with use_db(session) as work_db:
        survivors = [item for item, result in work_db.completed_work_items
                     if result.test_outcome == TestOutcome.SURVIVED]
        for item in survivors:
            result = mutate_and_test(item.mutations, test_command, timeout)
            work_db.set_result(item.job_id, result)
            mutation = item.mutations[0]
            print(f"{mutation.module_path}:{mutation.start_pos[0]} {mutation.operator_name} {mutation.occurrence}:"
                  f" {result.test_outcome.value if result.test_outcome else result.worker_outcome.value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
