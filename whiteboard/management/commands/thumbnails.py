from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from whiteboard import thumbnails
from whiteboard.models import Board


class Command(BaseCommand):
    help = (
        "Render the thumbnails of boards changed since their last one (the server "
        "does this in the background unless WHITEBOARD_THUMBNAIL_SECONDS is 0)."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--all", action="store_true", dest="every", help="render every board again"
        )
        which.add_argument("--board", metavar="SLUG", help="render this board only")

    def handle(self, *args, every, board, **options):
        if board:
            pk = Board.objects.filter(slug=board).values_list("pk", flat=True).first()
            if pk is None:
                raise CommandError(f"There is no board {board!r}.")
            seq = thumbnails.refresh(pk)
            self.stdout.write(f"Rendered board {board!r} at seq {seq}.")
            return
        done = 0
        if every:
            for pk in Board.objects.order_by("pk").values_list("pk", flat=True):
                done += thumbnails.refresh(pk) is not None
        else:
            # Not waiting for the quiet period: the operator asks for it now.
            for pk in thumbnails.stale_boards(None, quiet=timedelta(0)):
                done += thumbnails.refresh(pk) is not None
        self.stdout.write(f"Rendered {done} thumbnail(s).")
