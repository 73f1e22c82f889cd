"""Access changes enforced at commit time: Board.access_version and the re-check
in Batch.check, whatever becomes of the event that tells open connections."""

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import session_headers
from whiteboard import broadcast, services
from whiteboard.changes import OpRequest
from whiteboard.identity import Author
from whiteboard.models import Board, Element, Membership, Op, Role

from .test_services import codes, rect, request

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async
PLANS = "/ws/boards/plans/"


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def member(make_user):
    return make_user("mia")


@pytest.fixture
def plans(owner):
    return services.board_create(
        slug="plans", title="Plans", owner=owner, is_public=False
    )


def version(board):
    return Board.objects.get(pk=board.pk).access_version


def as_member(member, frame, held, role=Role.EDITOR):
    """A request as the member's connection makes it, holding version `held`."""
    author = Author("sid-mia", "mia", f"user:{member.pk}", member.pk, role)
    req = request(frame, author)
    return OpRequest(**{**vars(req), "access_version": held})


def commit(board, *requests):
    return services.ops_commit(
        board_id=board.pk, requests=list(requests), limits=services.current_limits()
    )


class BrokenLayer:
    async def group_send(self, group, event):
        raise ConnectionError("Redis is down")


def test_every_access_change_bumps_the_version(plans, member):
    assert version(plans) == 0
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    services.member_set(board=plans, user=member, role=Role.VIEWER)
    link, _ = services.share_link_create(board=plans, role=Role.EDITOR)
    services.share_link_revoke(link=link)
    plans.is_public = True
    services.board_update_settings(board=plans, fields=["is_public"])
    services.member_remove(membership=Membership.objects.get(user=member))
    assert version(plans) == 5
    assert Board.objects.get(pk=plans.pk).is_public


def test_a_removed_members_op_is_refused_at_commit_and_stores_nothing(plans, member):
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    held = version(plans)
    ok = commit(plans, as_member(member, {"type": "add", "element": rect("a")}, held))
    assert codes(ok) == ["ok"]
    services.member_remove(membership=Membership.objects.get(user=member))
    late = as_member(member, {"type": "add", "element": rect("b")}, held)
    result = commit(plans, late)
    assert codes(result) == ["forbidden"] and result.frames == []
    assert "no longer have permission" in result.outcomes[0].error.message
    assert list(Element.objects.values_list("element_id", flat=True)) == ["a"]
    assert Op.objects.count() == 1


def test_a_member_made_viewer_is_refused_and_one_who_stays_editor_is_not(
    plans, member, make_user
):
    other = make_user("otto")
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    services.member_set(board=plans, user=other, role=Role.EDITOR)
    held = version(plans)
    services.member_set(board=plans, user=member, role=Role.VIEWER)
    otto = Author("sid-otto", "otto", f"user:{other.pk}", other.pk, Role.EDITOR)
    otto_req = OpRequest(
        **{**vars(request({"type": "clear"}, otto)), "access_version": held}
    )
    result = commit(plans, as_member(member, {"type": "clear"}, held), otto_req)
    assert codes(result) == ["forbidden", "ok"]


def test_the_role_is_decided_once_per_author_per_batch(plans, member):
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    held = version(plans)
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    adds = [
        as_member(member, {"type": "add", "element": rect(f"r{i}")}, held)
        for i in range(20)
    ]
    with CaptureQueriesContext(connection) as queries:
        assert codes(commit(plans, *adds)) == ["ok"] * 20
    membership_reads = [q for q in queries if "whiteboard_membership" in q["sql"]]
    assert len(membership_reads) == 1


def test_an_op_holding_the_current_version_is_not_rechecked(plans, member):
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    held = version(plans)
    with CaptureQueriesContext(connection) as queries:
        commit(plans, as_member(member, {"type": "clear"}, held))
    assert not [q for q in queries if "whiteboard_membership" in q["sql"]]


def test_connection_recheck_returns_the_role_and_its_version(plans, member):
    services.member_set(board=plans, user=member, role=Role.VIEWER)
    role, held = services.connection_recheck(
        board_id=plans.pk, sid="nobody", user=member, keys=()
    )
    assert (role, held) == (Role.VIEWER, version(plans))


def test_member_remove_succeeds_when_the_channel_layer_fails(
    plans, member, monkeypatch
):
    services.member_set(board=plans, user=member, role=Role.EDITOR)
    monkeypatch.setattr(broadcast, "get_channel_layer", BrokenLayer)
    services.member_remove(membership=Membership.objects.get(user=member))
    assert not Membership.objects.filter(user=member).exists()
    plans.title = "Renamed"
    services.board_update_settings(board=plans, fields=["title"])
    services.board_delete(board=plans)
    assert not Board.objects.exists()


async def test_a_member_removed_while_every_event_is_lost_is_refused_at_commit(
    plans, member, connect, monkeypatch
):
    await run(services.member_set)(board=plans, user=member, role=Role.EDITOR)
    mia = await connect(PLANS, headers=await run(session_headers)(member))
    monkeypatch.setattr(broadcast, "publish_board", lambda board: None)
    membership = await run(Membership.objects.get)(user=member)
    await run(services.member_remove)(membership=membership)
    await mia.send({"type": "add", "cid": "cid-after-removal", "element": rect("x")})
    error = await mia.recv_type("error")
    assert (error["code"], error["cid"]) == ("forbidden", "cid-after-removal")
    assert not await run(Element.objects.filter(board=plans).exists)()
    assert error["message"].startswith("You no longer")
