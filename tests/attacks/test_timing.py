"""Server-measured attack time: per contractor, day and classifier, idle gaps capped."""

import pytest

from attacks import selectors, services
from attacks.models import Effort
from eventlog.projections import get, rebuild
from tests.attacks.conftest import LETS_THROUGH

pytestmark = pytest.mark.django_db

PROMPT = "the girl ran on the road ."


@pytest.fixture
def campaign(dataset, register):
    register("v-one", bias=LETS_THROUGH)
    return services.open_campaign(name="Timed", kind="manual", dataset=dataset, target_version="v-one")


def attempt(user, session, completion):
    services.score_attempt(user=user, session_id=session.pk, prompt=PROMPT, completion=completion)


def test_time_spent_equals_a_hand_computation_with_idle_gaps(campaign, attackers, clock):
    me = attackers[0]
    session = services.start_session(user=me, campaign=campaign)  # 09:00, nothing counted yet
    clock.advance(seconds=30)
    attempt(me, session, "she fell .")  # +30
    clock.advance(minutes=2)
    attempt(me, session, "she fell badly .")  # +120
    clock.advance(minutes=25)
    attempt(me, session, "she cut her hand .")  # idle: capped at +600
    clock.advance(seconds=10)
    services.submit_attack(user=me, session_id=session.pk, prompt=PROMPT, completion="she cut her hand .",
                           asserted_injurious=True)  # +10
    clock.advance(minutes=1)
    services.leave_session(user=me, session_id=session.pk)  # +60
    clock.advance(hours=3)
    later = services.start_session(user=me, campaign=campaign)  # after leaving: nothing
    clock.advance(seconds=45)
    attempt(me, later, "she hit her head .")  # +45
    clock.advance(hours=20)  # never left the page; the next day starts afresh
    next_day = services.start_session(user=me, campaign=campaign)
    clock.advance(seconds=20)
    attempt(me, next_day, "she broke her leg .")  # +20

    rows = {(r.day.isoformat(), r.version): r for r in Effort.objects.filter(user_id=me.pk)}
    first, second = rows[("2026-03-02", "v-one")], rows[("2026-03-03", "v-one")]
    assert first.seconds == 30 + 120 + 600 + 10 + 60 + 45
    assert (first.sessions, first.attempts, first.submissions) == (2, 4, 1)
    assert (second.seconds, second.sessions, second.attempts) == (20, 1, 1)
    [effort] = selectors.effort_by_classifier(campaign)
    assert (effort.version, effort.seconds, effort.contractor_days, effort.attempts, effort.submissions) == (
        "v-one", 885, 2, 5, 1)
    assert effort.successes == 0 and effort.seconds_per_success is None


def test_the_cap_is_the_campaigns_and_time_goes_to_the_classifier_then_attacked(dataset, register, attackers, clock):
    register("v-a", bias=LETS_THROUGH)
    register("v-b", bias=LETS_THROUGH, seed=3)
    campaign = services.open_campaign(name="Switch", kind="manual", dataset=dataset, target_version="v-a",
                                      idle_cap_seconds=60)
    me = attackers[1]
    session = services.start_session(user=me, campaign=campaign)
    clock.advance(minutes=5)
    attempt(me, session, "she fell .")  # capped at 60, against v-a
    services.switch_target(campaign=campaign, version="v-b")
    clock.advance(seconds=40)
    attempt(me, session, "she fell hard .")  # 40, against v-b
    seconds = dict(Effort.objects.filter(user_id=me.pk).values_list("version", "seconds"))
    assert seconds == {"v-a": 60, "v-b": 40}


def test_contractors_are_timed_separately_and_a_rebuild_gives_the_same_numbers(campaign, attackers, clock):
    a, b = attackers[:2]
    session_a = services.start_session(user=a, campaign=campaign)
    session_b = services.start_session(user=b, campaign=campaign)
    for step in range(3):
        clock.advance(seconds=100)
        attempt(a, session_a, f"she fell {step} .")
        clock.advance(seconds=7)
        attempt(b, session_b, f"she ran {step} .")
    before = sorted(Effort.objects.values_list("user_id", "seconds", "attempts"))
    assert before == sorted([(a.pk, 100 + 107 + 107, 3), (b.pk, 107 * 3, 3)])
    rebuild(get("attacks.work"))
    assert sorted(Effort.objects.values_list("user_id", "seconds", "attempts")) == before
