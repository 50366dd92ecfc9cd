"""manage.py rollout SLUG [...]: the traffic policy of a model's unpinned URL
(a candidate taking a share of requests, a shadow, rollback guards), and
promoting, aborting or ending it."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from registry import actions, rollouts
from registry.exceptions import NoCandidate, RegistryError
from registry.models import Activation, MLModel, TrafficPolicy
from registry.rollouts import Guards, PolicySpec

from .alias import refused, version_number

CLI = Activation.Channel.CLI
# --guard-* option -> Guards field.
GUARD_OPTIONS = {
    "guard_error_rate": "error_rate",
    "guard_p95_ms": "p95_ms",
    "guard_p95_ratio": "p95_ratio",
    "guard_last_requests": "last_requests",
    "guard_minutes": "minutes",
    "guard_min_requests": "min_requests",
}
SETTING_OPTIONS = (
    "candidate",
    "weight",
    "sticky",
    "sticky_feature",
    "no_sticky",
    "shadow",
    "no_shadow",
    "no_guards",
    *GUARD_OPTIONS,
)
STEPS = ("promote", "abort", "end")


class Command(BaseCommand):
    help = (
        "Show or change how the unpinned URL of model SLUG splits its traffic. "
        "With no option, print the current policy. Options not given keep the "
        "current policy's values. Every change is recorded in the model's "
        "history (channel 'cli') and served by every worker from its next "
        "request; nothing is stored if any part is refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the model's slug")
        parser.add_argument(
            "--candidate",
            type=version_number,
            metavar="N",
            help="the version that takes --weight of the unpinned requests "
            "('2' or 'v2'; ready, and not the active version)",
        )
        parser.add_argument(
            "--weight",
            type=float,
            metavar="W",
            help="the candidate's share of unpinned requests, from 0 to 1 "
            "(0.1 is one request in ten)",
        )
        sticky = parser.add_mutually_exclusive_group()
        sticky.add_argument(
            "--sticky",
            metavar="HEADER",
            help="pick the version by a hash of this request header (e.g. "
            "X-Route-Key), so one caller always gets the same version",
        )
        sticky.add_argument(
            "--sticky-feature",
            metavar="NAME",
            help="pick the version by a hash of this input feature instead",
        )
        sticky.add_argument(
            "--no-sticky",
            action="store_true",
            help="pick the version at random for each request",
        )
        shadow = parser.add_mutually_exclusive_group()
        shadow.add_argument(
            "--shadow",
            type=version_number,
            metavar="M",
            help="a version that also predicts every unpinned request after the "
            "response, unseen by callers (not the active version)",
        )
        shadow.add_argument(
            "--no-shadow", action="store_true", help="remove the shadow"
        )
        guards = parser.add_argument_group(
            "guards",
            "The candidate's weight goes to 0 by itself when one threshold is "
            "crossed over the window (default window: the last 100 requests).",
        )
        guards.add_argument(
            "--guard-error-rate",
            type=float,
            metavar="RATE",
            help="the candidate's share of failed requests, above 0, at most 1",
        )
        guards.add_argument(
            "--guard-p95-ms",
            type=float,
            metavar="MS",
            help="the candidate's 95th percentile latency in milliseconds",
        )
        guards.add_argument(
            "--guard-p95-ratio",
            type=float,
            metavar="X",
            help="the candidate's p95 latency over the active version's",
        )
        guards.add_argument(
            "--guard-last-requests",
            type=int,
            metavar="N",
            help="window: the candidate's last N requests",
        )
        guards.add_argument(
            "--guard-minutes",
            type=float,
            metavar="MIN",
            help="window: the last MIN minutes",
        )
        guards.add_argument(
            "--guard-min-requests",
            type=int,
            metavar="N",
            help="judge nothing before the window holds N requests (default 20)",
        )
        guards.add_argument(
            "--no-guards", action="store_true", help="remove every guard"
        )
        step = parser.add_mutually_exclusive_group()
        step.add_argument(
            "--promote",
            action="store_true",
            help="make the candidate the active version (the shadow stays)",
        )
        step.add_argument(
            "--abort",
            action="store_true",
            help="send the candidate no more traffic (weight 0), keeping the rest",
        )
        step.add_argument(
            "--end",
            action="store_true",
            help="delete the policy: the active version takes all traffic, no shadow",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        step = next((name for name in STEPS if options[name]), None)
        # Identity, not equality: "--weight 0" is given although 0 == False.
        given = [
            name
            for name in SETTING_OPTIONS
            if options[name] is not None and options[name] is not False
        ]
        if step and given:
            raise CommandError(f"--{step} cannot be combined with {_flag(given[0])}.")
        guards_given = [name for name in GUARD_OPTIONS if options[name] is not None]
        if options["no_guards"] and guards_given:
            raise CommandError(
                f"--no-guards cannot be combined with {_flag(guards_given[0])}."
            )
        try:
            model = actions.get_model(options["slug"])
            if step == "promote":
                self._promote(model)
            elif step == "end":
                self._end(model)
                return
            elif step == "abort":
                if not rollouts.abort(model, channel=CLI):
                    raise NoCandidate(
                        f"Model '{model.slug}' has no candidate taking traffic."
                    )
            elif given:
                self._set(model, options)
        except RegistryError as exc:
            raise refused(exc) from None
        self._show(model)

    def _set(self, model: MLModel, options: dict[str, Any]) -> None:
        # Read, merge and write under the model's lock: a guard that trips in
        # between would otherwise see its weight 0 overwritten by the old one.
        with transaction.atomic():
            locked = MLModel.objects.select_for_update().get(pk=model.pk)
            current = TrafficPolicy.objects.filter(model=locked).first()
            spec = _merged(locked, _spec_of(current), options)
            rollouts.set_policy(locked, spec, channel=CLI)

    def _promote(self, model: MLModel) -> None:
        activation = rollouts.promote(model, channel=CLI)
        origin = f"v{activation.from_number}" if activation.from_number else "none"
        self.stdout.write(
            f"{model.slug}: v{activation.to_number} is now active (was {origin})"
        )

    def _end(self, model: MLModel) -> None:
        if rollouts.end_policy(model, channel=CLI):
            self.stdout.write(
                f"{model.slug}: traffic policy ended; the active version takes "
                "all traffic"
            )
        else:
            self.stdout.write(f"{model.slug}: no traffic policy to end")

    def _show(self, model: MLModel) -> None:
        model.refresh_from_db()
        active = model.active_version
        served = f"active v{active.number}" if active else "no active version"
        head = f"{model.slug}: {served}"
        policy = rollouts.describe(TrafficPolicy.objects.filter(model=model).first())
        if policy is None:
            self.stdout.write(f"{head}\nno traffic policy")
            return
        self.stdout.write("\n".join([head, *_policy_lines(policy)]))


def _spec_of(policy: TrafficPolicy | None) -> PolicySpec:
    """The stored policy as a spec, so a change can keep what it does not name."""
    if policy is None:
        return PolicySpec()
    return PolicySpec(
        candidate=policy.candidate,
        weight=policy.weight,
        sticky_header=policy.sticky_header,
        sticky_feature=policy.sticky_feature,
        shadow=policy.shadow,
        guards=Guards(
            error_rate=policy.guard_error_rate,
            p95_ms=policy.guard_p95_ms,
            p95_ratio=policy.guard_p95_ratio,
            last_requests=policy.guard_last_requests,
            minutes=policy.guard_minutes,
            min_requests=policy.guard_min_requests,
        ),
    )


def _merged(model: MLModel, base: PolicySpec, options: dict[str, Any]) -> PolicySpec:
    """``base`` with the options given on the command line laid over it."""
    candidate = base.candidate
    if options["candidate"] is not None:
        candidate = actions.get_version(model, options["candidate"])
    if options["weight"] is not None and candidate is None:
        raise NoCandidate(
            f"Model '{model.slug}' has no candidate to weigh: pass --candidate N."
        )
    header, feature = base.sticky_header, base.sticky_feature
    if options["no_sticky"]:
        header, feature = "", ""
    elif options["sticky"] is not None or options["sticky_feature"] is not None:
        # One way to stick at a time: naming one replaces the other.
        header, feature = options["sticky"] or "", options["sticky_feature"] or ""
    shadow = base.shadow
    if options["no_shadow"]:
        shadow = None
    elif options["shadow"] is not None:
        shadow = actions.get_version(model, options["shadow"])
    guards = Guards() if options["no_guards"] else base.guards
    changed = {
        field: options[name]
        for name, field in GUARD_OPTIONS.items()
        if options[name] is not None
    }
    return PolicySpec(
        candidate=candidate,
        weight=base.weight if options["weight"] is None else options["weight"],
        sticky_header=header,
        sticky_feature=feature,
        shadow=shadow,
        guards=dataclasses.replace(guards, **changed),
    )


def _policy_lines(policy: dict[str, Any]) -> list[str]:
    candidate = policy["candidate"]
    weight = policy["weight"]
    lines = [
        f"candidate: v{candidate}, weight {weight:g} ({weight * 100:g}% of "
        "unpinned requests)"
        if candidate is not None
        else "candidate: none"
    ]
    if policy["sticky"]:
        lines.append(f"sticky: header {policy['sticky']}")
    elif policy["sticky_feature"]:
        lines.append(f"sticky: feature {policy['sticky_feature']}")
    else:
        lines.append("sticky: none (random per request)")
    shadow = policy["shadow"]
    lines.append(f"shadow: v{shadow}" if shadow is not None else "shadow: none")
    guards = policy["guards"]
    if all(guards[key] is None for key in ("error_rate", "p95_ms", "p95_ratio")):
        lines.append("guards: none")
    else:
        shown = [
            f"{key} {value:g}" for key, value in guards.items() if value is not None
        ]
        lines.append("guards: " + ", ".join(shown))
    return lines


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")
