"""The threshold-selection simulation study (`evaluation.simulation`): bias, coverage, chosen thresholds."""

import time

from django.core.management.base import BaseCommand, CommandError

from evaluation import simulation


class Command(BaseCommand):
    help = ("Run threshold selection on synthetic worlds with a known preference curve and print its mean error, "
            "its intervals' coverage and the true preference at the thresholds it chooses.")

    def add_arguments(self, parser):
        parser.add_argument("--replicates", type=int, default=2000, help="data sets per world (default 2000)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--completions", type=int, nargs=2, default=(101, 130), metavar=("FEWEST", "MOST"),
                            help="scored completions a prompt (default 101 130)")
        parser.add_argument("--world", action="append", default=[], help="only the world(s) with this name")

    def handle(self, *args, **options):
        if options["replicates"] < 2:
            raise CommandError("at least 2 replicates")
        fewest, most = options["completions"]
        if not 2 <= fewest <= most:
            raise CommandError("completions: 2 <= FEWEST <= MOST")
        chosen = [w for w in simulation.worlds(completions=(fewest, most))
                  if not options["world"] or w.name in options["world"]]
        if not chosen:
            names = ", ".join(repr(w.name) for w in simulation.worlds())
            raise CommandError(f"no such world; the worlds are {names}")
        for world in chosen:
            began = time.perf_counter()
            result = simulation.run_study(world, options["replicates"], seed=options["seed"])
            self.stdout.write(f"\n{world.name}: {world.description} ({result.replicates} replicates, "
                              f"{world.prompts} prompts, {fewest}-{most} completions each, "
                              f"{time.perf_counter() - began:.0f} s)")
            for line in result.lines():
                self.stdout.write(line)
