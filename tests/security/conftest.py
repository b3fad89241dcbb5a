"""The API tests' world (tests/api/conftest.py), made ready for pages and the admin: the PM is
a staff user, a staff vendor manager (staff, not a PM) and a same-vendor colleague join, and an
open tool-assisted campaign has a session of the contractor's."""

from dataclasses import asdict, dataclass

import pytest
from django.test import Client

from annotation.models import Role
from attacks import services as attacks
from evaluation import jobs as evaluation_jobs
from evaluation.report import ReportSpec
from tests.api.conftest import World, fresh_throttles, member, no_job_queue, world  # noqa: F401 - fixtures
from tests.tiny_models import LETS_THROUGH

TEXT = {"prompt": "the knight walked home on the road .", "completion": "he fell and broke his arm ."}


@dataclass
class Secured:
    world: World
    users: dict  # role -> User (None: anonymous)
    campaign_id: str
    session_id: str  # the contractor's attack session
    other_session_id: str  # the other vendor's contractor's

    def client(self, role: str) -> Client:
        """A browser of `role`: a real session (force_login), no CSRF enforcement."""
        client = Client()
        if self.users[role] is not None:
            client.force_login(self.users[role])
        return client


@pytest.fixture
def secured(world, register) -> Secured:  # noqa: F811 - the fixture imported above
    users = dict(world.users)
    pm = users["pm"]
    pm.is_staff = True  # a PM who uses the admin is a staff user (README, "Roles")
    pm.save()
    staff_manager = member("stella", Role.VENDOR_MANAGER, world.vendor)
    staff_manager.is_staff = True  # staff by mistake: still no PM
    staff_manager.save()
    users["staff_vendor_manager"] = staff_manager
    users["colleague"] = member("carol", Role.CONTRACTOR, world.vendor)

    register("tiny-open", bias=LETS_THROUGH)  # lets the test text through: submissions are accepted
    campaign = attacks.open_campaign(name="Rewrite", kind="tool_assisted", dataset=world.dataset,
                                     target_version="tiny-open")
    session = attacks.start_session(user=users["contractor"], campaign=campaign)
    other = attacks.start_session(user=users["other_contractor"], campaign=campaign)
    # a computed report, for the downloads (they read the newest one and never compute)
    evaluation_jobs.request("report", asdict(ReportSpec(classifiers=[world.version])))
    return Secured(world, users, str(campaign.pk), str(session.pk), str(other.pk))
